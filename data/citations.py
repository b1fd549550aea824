"""BibTeX of the works every card cites: the FocusCLIP paper and the MPII Human Pose dataset."""

FOCUSCLIP_BIBTEX = """\
@article{khan2024focusclip,
  title   = {FocusCLIP: Multimodal Subject-Level Guidance for Zero-Shot Transfer in Human-Centric Tasks},
  author  = {Khan, Muhammad Saif Ullah and Naeem, Muhammad Ferjad and Tombari, Federico and
             Van Gool, Luc and Stricker, Didier and Afzal, Muhammad Zeshan},
  journal = {arXiv preprint arXiv:2403.06904},
  year    = {2024}
}"""

MPII_BIBTEX = """\
@inproceedings{andriluka14cvpr,
  title     = {2D Human Pose Estimation: New Benchmark and State of the Art Analysis},
  author    = {Andriluka, Mykhaylo and Pishchulin, Leonid and Gehler, Peter and Schiele, Bernt},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2014}
}"""
