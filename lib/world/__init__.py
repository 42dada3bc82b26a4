"""The synthetic human-motion world: real CMU mocap and procedural motion (:mod:`~lib.world.mocap`,
:mod:`~lib.world.motion`) worn by individual people (:mod:`~lib.world.people`), rendered by a perspective
camera (:mod:`~lib.world.render`) into frames with exact 2D/3D ground truth (:mod:`~lib.world.synth`)."""
