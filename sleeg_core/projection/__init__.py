"""From image pixels to metres: camera intrinsics and mounting pose (`camera`), one 3D location
per obstacle (`locate`) and the anomalous pixels as a point cloud (`points`). Pure numpy; frames
follow REP 103 (body: x forward, y left, z up; optical: z forward, x right, y down)."""
