"""Faces in ordinary photos: detection and landmarks (dlib), alignment to a generator's training crop, pasting
restored crops back, and the identity metric.

* :mod:`.detection` — every face in a photo with its box and 68 landmarks (dlib's HOG detector and
  ``shape_predictor_68_face_landmarks.dat``).
* :mod:`.alignment` — the crop conventions generators were trained on (``ALIGNMENTS``: FFHQ's recipe,
  CelebA-HQ's, and 5-point templates), as similarity transforms photo -> crop; warping and its inverse.
* :mod:`.paste` — a restored crop blended back into its photo with a feathered mask.
* :mod:`.identity` — dlib's 128-d face descriptor and the distance between two faces (< 0.6: same person).

Coordinates are continuous pixel coordinates: pixel (i, j) covers [j, j + 1) x [i, i + 1), so its centre is
(j + 0.5, i + 0.5); dlib's integer landmark positions are pixel indices and get + 0.5. Images at this boundary
are ``uint8`` arrays ``[H, W, 3]`` (RGB).
"""
