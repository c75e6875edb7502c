"""Complete faces in real photos: detect -> crop -> generator -> paste back -> blend.

Shared by ``collaface complete`` (one photo or a folder) and the web demo. Modules:
``runtime`` (the generator on torch or onnxruntime, numpy in and out), ``engine``
(:class:`~collaface.inference.engine.FaceCompleter`: one photo in memory), ``pictures``
(parsing, landmarks and side-by-side pictures of a completion), ``files`` (mask and photo files,
one photo from file to file), ``batch`` (a folder) and ``cli`` (``collaface complete``, its exit
codes). The crop geometry lives beside ``CropBox`` in ``collaface.data.crop``. For one photo:

1. **Detect** the faces (mediapipe, the annotation extra) with the hole pre-filled, retrying on
   padded and turned copies (:mod:`collaface.data.face_search`): first on the whole photo only
   (fast); the tiled search for small faces runs when that finds no face or the hole is not
   inside the faces found. ``no_detect`` treats the photo as one face crop (for prepared
   crops): the crop of the face found in it, if any and the hole fits, so that the model sees
   the face at its trained scale; else the whole photo.
2. **Crop** each face whose square crop (the rule of ``data/crop.py``, as ``prepare`` and
   training, unaligned) intersects the hole, grown and shifted within the model's trained
   framing to hold the hole (:mod:`collaface.data.crop_fit`; a part of the hole beyond that, up
   to ``MAX_OUTSIDE_SHARE``, gets a classical fill after the faces), resized to the model's
   side S. A face tilted more
   than ``STRAIGHTEN_BEYOND`` degrees (the training augmentation's rotation range; a tilted head, a
   sideways photo) gets the same square turned upright, and named regions are placed in that
   upright frame.
3. **Generate**: the hole is filled with uniform noise (the paper's z, from a seeded generator,
   so results are repeatable) and the generator predicts the image, parsing and landmarks.
4. **Paste back** into the full-resolution photo: the completion is upsampled (cubic; when a
   model pixel covers ``SMOOTH_FROM_SCALE`` or more photo pixels it is first low-passed by a 3x3
   binomial filter, which removes the generator's one-pixel checkerboard texture that the
   magnification would otherwise turn into visible blocks) and Poisson-blended, as the paper
   does, so that it meets the known pixels without a seam, then
   written **only inside the hole**: every known pixel stays bit-identical. The Poisson solve is
   our own coarse-to-fine SOR (:func:`collaface.blending.harmonic_fill`): ``cv2.seamlessClone`` lets the hole's
   old content leak into the result and clears the mask's border pixels.

Faces are completed largest first; a later face sees the earlier completions as known pixels.
Holes: ``(H, W)`` bool, True = hole. Mask files: white or any non-black grey = hole, black =
known; in a mask with transparency every painted pixel is hole (see :func:`files.read_mask`).
Coordinates are (x, y) pixels of the upright photo, pixel centres at integer coordinates.
"""
