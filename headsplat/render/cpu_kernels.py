"""Numba kernels of the CPU backend: binning, and the pixel stage forward and backward.

Design (see the issue note for measurements):
- Each Gaussian covers the exact ellipse where its alpha reaches 1/255 (alpha = o·exp(-σ) >= 1/255
  ⇔ 2σ <= 2 ln(255 o)); tiles and, inside a tile, the pixel span of each row come from that ellipse, so
  no pixel outside it is ever visited and no pixel inside it is missed.
- Gaussians are sorted by depth once and packed in that order; tile lists then hold increasing positions,
  so they are depth-sorted for free and read memory forwards.
- The loops go Gaussian-outer, pixel-inner within a tile, with per-pixel transmittance state: the same
  result as the per-pixel CUDA loop, but a Gaussian only touches the pixels of its ellipse and its
  gradient is summed in registers before one write per (Gaussian, tile).
- Tiles are dealt to one chunk per thread, largest first (LPT), so threads get equal work; each chunk has
  its own gradient buffer (no atomics, deterministic for a given thread count).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

TILE = 16
ALPHA_MIN = np.float32(1.0 / 255.0)
ALPHA_MAX = np.float32(0.99)
T_MIN = np.float32(1e-4)
# Packed per-Gaussian scalars, in depth order.
MX, MY, CA, CB, CC, OP, R2 = range(7)
N_SCALARS = 7
# Gradient layout per Gaussian: d/d(mx, my, a, b, c, opacity), then the colour channels.
N_GRAD_GEOM = 6
_SPAN_EPS = 1e-3  # px slack on ellipse spans; the alpha test is the exact cut


@njit(cache=True, parallel=True)
def _rects(means2d, conics, opacities, valid, width, height):
    """Per Gaussian: pixel box (x0, x1, y0, y1) inclusive and r² = 2 ln(255 o); box empty when x0 > x1."""
    n = means2d.shape[0]
    rects = np.empty((n, 4), np.int32)
    r2s = np.zeros(n, np.float32)
    for i in prange(n):
        rects[i, 0] = 1
        rects[i, 1] = 0
        rects[i, 2] = 1
        rects[i, 3] = 0
        o = opacities[i]
        if not valid[i] or not (o >= ALPHA_MIN):
            continue
        a, b, c = conics[i, 0], conics[i, 1], conics[i, 2]
        det = a * c - b * b
        if not (det > 0) or not (a > 0) or not math.isfinite(a * c):
            continue
        r2 = 2.0 * math.log(255.0 * o)
        ex = math.sqrt(r2 * c / det) + _SPAN_EPS
        ey = math.sqrt(r2 * a / det) + _SPAN_EPS
        mx, my = means2d[i, 0], means2d[i, 1]
        if not (math.isfinite(mx) and math.isfinite(my) and math.isfinite(r2)):
            continue  # the compositing kernels assume finite values (fastmath): non-finite Gaussians are culled
        # Pixel centres j + 0.5 inside [m - e, m + e]; clamp in float before converting to int.
        x0 = math.ceil(min(max(mx - ex - 0.5, -1.0), width + 1.0))
        x1 = math.floor(min(max(mx + ex - 0.5, -1.0), width + 1.0))
        y0 = math.ceil(min(max(my - ey - 0.5, -1.0), height + 1.0))
        y1 = math.floor(min(max(my + ey - 0.5, -1.0), height + 1.0))
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, width - 1), min(y1, height - 1)
        if x0 > x1 or y0 > y1:
            continue
        rects[i, 0], rects[i, 1], rects[i, 2], rects[i, 3] = x0, x1, y0, y1
        r2s[i] = r2
    return rects, r2s


@njit(cache=True)
def _bin(rects, order, tiles_x, n_tiles):
    """Tile lists of packed (depth-order) positions. ``order``: Gaussian ids with a non-empty box, by depth."""
    counts = np.zeros(n_tiles + 1, np.int64)
    for s in range(order.shape[0]):
        g = order[s]
        for ty in range(rects[g, 2] // TILE, rects[g, 3] // TILE + 1):
            for tx in range(rects[g, 0] // TILE, rects[g, 1] // TILE + 1):
                counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    ids = np.empty(offsets[-1], np.int32)
    for s in range(order.shape[0]):
        g = order[s]
        for ty in range(rects[g, 2] // TILE, rects[g, 3] // TILE + 1):
            for tx in range(rects[g, 0] // TILE, rects[g, 1] // TILE + 1):
                t = ty * tiles_x + tx
                ids[fill[t]] = s
                fill[t] += 1
    return offsets, ids


@njit(cache=True)
def _deal_tiles(offsets, n_chunks):
    """Assign tiles to chunks, heaviest first to the least loaded chunk. Returns (chunk_offsets, tiles)."""
    n_tiles = offsets.shape[0] - 1
    work = offsets[1:] - offsets[:-1]
    by_work = np.argsort(-work)
    load = np.zeros(n_chunks, np.int64)
    owner = np.empty(n_tiles, np.int64)
    counts = np.zeros(n_chunks + 1, np.int64)
    for k in range(n_tiles):
        t = by_work[k]
        c = np.argmin(load)
        owner[t] = c
        load[c] += work[t] + 4  # every tile also costs its per-pixel setup
        counts[c + 1] += 1
    chunk_offsets = np.cumsum(counts)
    fill = chunk_offsets[:-1].copy()
    tiles = np.empty(n_tiles, np.int64)
    for k in range(n_tiles):
        t = by_work[k]
        tiles[fill[owner[t]]] = t
        fill[owner[t]] += 1
    return chunk_offsets, tiles


@njit(cache=True, parallel=True)
def _pack(order, means2d, conics, opacities, r2s, colors, rects):
    m = order.shape[0]
    n_ch = colors.shape[1]
    scal = np.empty((m, N_SCALARS), np.float32)
    cols = np.empty((m, n_ch), np.float32)
    prect = np.empty((m, 4), np.int32)
    for s in prange(m):
        g = order[s]
        scal[s, MX] = means2d[g, 0]
        scal[s, MY] = means2d[g, 1]
        scal[s, CA] = conics[g, 0]
        scal[s, CB] = conics[g, 1]
        scal[s, CC] = conics[g, 2]
        scal[s, OP] = opacities[g]
        scal[s, R2] = r2s[g]
        for k in range(n_ch):
            cols[s, k] = colors[g, k]
        for k in range(4):
            prect[s, k] = rects[g, k]
    return scal, cols, prect


@njit(cache=True, inline="always")
def _tile_bounds(t, tiles_x, width, height):
    """Inclusive pixel bounds (x0, x1, y0, y1) of tile ``t``."""
    tx0 = (t % tiles_x) * TILE
    ty0 = (t // tiles_x) * TILE
    return tx0, min(tx0 + TILE, width) - 1, ty0, min(ty0 + TILE, height) - 1


@njit(cache=True, inline="always")
def _clip_to_tile(prect, s, tx0, tx1, ty0, ty1):
    """Gaussian ``s``'s pixel box clipped to a tile: (xa, xb, ya, yb), empty when xa > xb or ya > yb."""
    return max(prect[s, 0], tx0), min(prect[s, 1], tx1), max(prect[s, 2], ty0), min(prect[s, 3], ty1)


@njit(cache=True, inline="always")
def _row_span(scal, s, dy, x0, x1):
    """Pixels x in [x0, x1] of a row at offset dy = my - py inside the ellipse 2σ <= r²."""
    a, b, c, r2 = scal[s, CA], scal[s, CB], scal[s, CC], scal[s, R2]
    disc = b * b * dy * dy - a * (c * dy * dy - r2)
    if disc < 0:
        return 1, 0
    root = math.sqrt(disc)
    mx = scal[s, MX]
    # dx = mx - px in [(-b dy - root)/a, (-b dy + root)/a]  ⇒  px in [mx - hi, mx - lo]
    lo = (-b * dy - root) / a
    hi = (-b * dy + root) / a
    xs = max(x0, math.ceil(mx - hi - 0.5 - _SPAN_EPS))
    xe = min(x1, math.floor(mx - lo - 0.5 + _SPAN_EPS))
    return xs, xe


@njit(cache=True, parallel=True, fastmath=True)
def rasterize_forward(scal, cols, prect, offsets, ids, chunk_offsets, chunk_tiles, width, height, background):
    """Front-to-back compositing of C - 1 colour channels and depth (the last channel).

    Returns colour over ``background`` (H, W, C - 1), alpha (H, W), expected depth (H, W) (0 where alpha is
    0), and for the backward pass the final transmittance (H, W) and each pixel's last drawn list position.
    """
    n_ch = cols.shape[1]
    n_col = n_ch - 1
    tiles_x = (width + TILE - 1) // TILE
    out_rgb = np.empty((height, width, n_col), np.float32)
    out_alpha = np.zeros((height, width), np.float32)
    out_depth = np.zeros((height, width), np.float32)
    out_t = np.ones((height, width), np.float32)
    out_last = np.full((height, width), -1, np.int64)
    n_chunks = chunk_offsets.shape[0] - 1
    for ch in prange(n_chunks):
        trans = np.empty(TILE * TILE, np.float32)
        acc = np.empty((TILE * TILE, n_ch), np.float32)
        last = np.empty(TILE * TILE, np.int64)
        done = np.empty(TILE * TILE, np.bool_)
        for q in range(chunk_offsets[ch], chunk_offsets[ch + 1]):
            t = chunk_tiles[q]
            tx0, tx1, ty0, ty1 = _tile_bounds(t, tiles_x, width, height)
            trans[:] = 1.0
            acc[:] = 0.0
            last[:] = -1
            done[:] = False
            active = (tx1 - tx0 + 1) * (ty1 - ty0 + 1)
            for k in range(offsets[t], offsets[t + 1]):
                s = ids[k]
                xa, xb, ya, yb = _clip_to_tile(prect, s, tx0, tx1, ty0, ty1)
                if xa > xb or ya > yb:
                    continue
                mx, my = scal[s, MX], scal[s, MY]
                a, b, c, o = scal[s, CA], scal[s, CB], scal[s, CC], scal[s, OP]
                for y in range(ya, yb + 1):
                    dy = my - (np.float32(y) + np.float32(0.5))
                    xs, xe = _row_span(scal, s, dy, xa, xb)
                    row = (y - ty0) * TILE - tx0
                    for x in range(xs, xe + 1):
                        p = row + x
                        if done[p]:
                            continue
                        dx = mx - (np.float32(x) + np.float32(0.5))
                        sigma = np.float32(0.5) * (a * dx * dx + c * dy * dy) + b * dx * dy
                        if sigma < 0:
                            continue
                        alpha = min(ALPHA_MAX, o * math.exp(-sigma))
                        if alpha < ALPHA_MIN:
                            continue
                        t_next = trans[p] * (np.float32(1.0) - alpha)
                        if t_next <= T_MIN:
                            done[p] = True
                            active -= 1
                            continue
                        w = alpha * trans[p]
                        for kk in range(n_ch):
                            acc[p, kk] += w * cols[s, kk]
                        trans[p] = t_next
                        last[p] = k
                if active == 0:
                    break
            for y in range(ty0, ty1 + 1):
                for x in range(tx0, tx1 + 1):
                    p = (y - ty0) * TILE + x - tx0
                    tp = trans[p]
                    for kk in range(n_col):
                        out_rgb[y, x, kk] = acc[p, kk] + tp * background[kk]
                    a = np.float32(1.0) - tp
                    out_alpha[y, x] = a
                    if a > 0:
                        out_depth[y, x] = acc[p, n_col] / max(a, np.float32(1e-10))
                    out_t[y, x] = tp
                    out_last[y, x] = last[p]
    return out_rgb, out_alpha, out_depth, out_t, out_last


@njit(cache=True, parallel=True, fastmath=True)
def rasterize_backward(scal, cols, prect, offsets, ids, chunk_offsets, chunk_tiles, width, height,
                       background, out_depth, out_t, out_last, v_rgb, v_alpha, v_depth):
    """Gradients per packed Gaussian: (M, 6 + C) = d/d(mx, my, a, b, c, opacity, colour..., depth).

    ``v_rgb`` (H, W, C - 1), ``v_alpha`` (H, W) and ``v_depth`` (H, W) are the gradients of the outputs of
    :func:`rasterize_forward`; they are first turned into gradients of the accumulated channels and of
    alpha = 1 - T (background and depth normalisation depend on alpha).
    Pixels are replayed back to front from their last drawn Gaussian, recovering each
    Gaussian's transmittance by division, as gsplat does.
    """
    n_ch = cols.shape[1]
    n_col = n_ch - 1
    m = scal.shape[0]
    tiles_x = (width + TILE - 1) // TILE
    n_chunks = chunk_offsets.shape[0] - 1
    grads = np.zeros((n_chunks, m, N_GRAD_GEOM + n_ch), np.float32)
    for ch in prange(n_chunks):
        g_buf = grads[ch]
        trans = np.empty(TILE * TILE, np.float32)
        t_final = np.empty(TILE * TILE, np.float32)
        behind = np.empty((TILE * TILE, n_ch), np.float32)
        v_pix = np.empty((TILE * TILE, n_ch), np.float32)
        v_a = np.empty(TILE * TILE, np.float32)
        last = np.empty(TILE * TILE, np.int64)
        v_col = np.empty(n_ch, np.float32)
        for q in range(chunk_offsets[ch], chunk_offsets[ch + 1]):
            t = chunk_tiles[q]
            if offsets[t] == offsets[t + 1]:
                continue
            tx0, tx1, ty0, ty1 = _tile_bounds(t, tiles_x, width, height)
            max_last = -1
            for y in range(ty0, ty1 + 1):
                for x in range(tx0, tx1 + 1):
                    p = (y - ty0) * TILE + x - tx0
                    tp = out_t[y, x]
                    trans[p] = tp
                    t_final[p] = tp
                    last[p] = out_last[y, x]
                    max_last = max(max_last, out_last[y, x])
                    va = v_alpha[y, x]
                    for kk in range(n_col):
                        v_pix[p, kk] = v_rgb[y, x, kk]
                        va -= background[kk] * v_rgb[y, x, kk]
                    a = np.float32(1.0) - tp
                    if a > 0:
                        inv = np.float32(1.0) / max(a, np.float32(1e-10))
                        v_pix[p, n_col] = v_depth[y, x] * inv
                        va -= v_depth[y, x] * out_depth[y, x] * inv
                    else:
                        v_pix[p, n_col] = 0.0
                    v_a[p] = va
                    for kk in range(n_ch):
                        behind[p, kk] = 0.0
            for k in range(max_last, offsets[t] - 1, -1):
                s = ids[k]
                xa, xb, ya, yb = _clip_to_tile(prect, s, tx0, tx1, ty0, ty1)
                if xa > xb or ya > yb:
                    continue
                mx, my = scal[s, MX], scal[s, MY]
                a, b, c, o = scal[s, CA], scal[s, CB], scal[s, CC], scal[s, OP]
                g_mx = g_my = g_a = g_b = g_c = g_o = np.float32(0.0)
                v_col[:] = 0.0
                touched = False
                for y in range(ya, yb + 1):
                    dy = my - (np.float32(y) + np.float32(0.5))
                    xs, xe = _row_span(scal, s, dy, xa, xb)
                    row = (y - ty0) * TILE - tx0
                    for x in range(xs, xe + 1):
                        p = row + x
                        if k > last[p]:
                            continue
                        dx = mx - (np.float32(x) + np.float32(0.5))
                        sigma = np.float32(0.5) * (a * dx * dx + c * dy * dy) + b * dx * dy
                        if sigma < 0:
                            continue
                        vis = math.exp(-sigma)
                        alpha = min(ALPHA_MAX, o * vis)
                        if alpha < ALPHA_MIN:
                            continue
                        touched = True
                        ra = np.float32(1.0) / (np.float32(1.0) - alpha)
                        trans[p] *= ra
                        fac = alpha * trans[p]
                        d_alpha = t_final[p] * ra * v_a[p]
                        for kk in range(n_ch):
                            v_col[kk] += fac * v_pix[p, kk]
                            d_alpha += (cols[s, kk] * trans[p] - behind[p, kk] * ra) * v_pix[p, kk]
                            behind[p, kk] += cols[s, kk] * fac
                        if o * vis <= ALPHA_MAX:
                            d_sigma = -o * vis * d_alpha
                            g_a += np.float32(0.5) * d_sigma * dx * dx
                            g_b += d_sigma * dx * dy
                            g_c += np.float32(0.5) * d_sigma * dy * dy
                            g_mx += d_sigma * (a * dx + b * dy)
                            g_my += d_sigma * (b * dx + c * dy)
                            g_o += vis * d_alpha
                if touched:
                    g_buf[s, 0] += g_mx
                    g_buf[s, 1] += g_my
                    g_buf[s, 2] += g_a
                    g_buf[s, 3] += g_b
                    g_buf[s, 4] += g_c
                    g_buf[s, 5] += g_o
                    for kk in range(n_ch):
                        g_buf[s, N_GRAD_GEOM + kk] += v_col[kk]
    total = np.zeros((m, N_GRAD_GEOM + n_ch), np.float32)
    for s in prange(m):
        for ch in range(n_chunks):
            for kk in range(N_GRAD_GEOM + n_ch):
                total[s, kk] += grads[ch, s, kk]
    return total
