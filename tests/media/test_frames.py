"""FrameSource: streaming frames of videos, images and folders."""


def test_first_frames_of_a_video_stop_decoding_there(posed_video):
    from headsplat.media.frames import open_frames

    src = open_frames(posed_video[0])
    cut = src.first(3)
    assert len(cut) == 3 and [f.index for f in cut] == [0, 1, 2]
    assert len(src) == 48 and src.first(100).n_frames == 48  # the original is untouched; never more than it has
