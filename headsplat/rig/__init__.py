"""Head rigs: topology (vertices, triangles) plus a pure function from parameters to posed vertices: the
:class:`~headsplat.rig.base.HeadRig` protocol, the open rig (default) and FLAME (the user's file)."""
