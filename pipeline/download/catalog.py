"""The nine datasets `focus-data download` knows: MPII and the eight evaluation datasets.

Each entry names the official sources (or the host the dataset's authors link to), the members of
each file, the folder they are unpacked into under --root (docs/design.md §5, the layouts the eval
readers read) and the counts that must hold afterwards. Provenance of every hard-coded fact is noted
beside it. Counts marked `strict=False` come from third parties: a mismatch is reported as a warning.
"""
from __future__ import annotations

from focusclip.pipeline.download.spec import Count, Dataset, Layout, Part

# Google Drive's direct-download endpoint (as gdown uses); `confirm=t` skips the virus-scan page of
# large files. When Drive answers with a web page instead (quota, sign-in), the command says so and
# points at the manual route (--from).
DRIVE = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
EVAL = "focus-eval CHECKPOINT --data-root {root}"

# MPII Human Pose: http://human-pose.mpi-inf.mpg.de/#download links both files (Images 12.9 GB,
# Annotations 12.5 MB); the URLs are the ones the dataset page and e.g. isarandi/metrabs use.
MPII = Dataset(
    name="mpii", title="MPII Human Pose", folder="mpii",
    parts=(
        Part("mpii_human_pose_v1.tar.gz", size="12.9 GB",
             url="https://datasets.d2.mpi-inf.mpg.de/andriluka14cvpr/mpii_human_pose_v1.tar.gz",
             layouts=(Layout("images/*.jpg", counts=(Count(
                 "images/*.jpg", 24987, strict=False,
                 source="RELEASE.annolist has 24,987 entries; the Voxel51 copy holds 24,984 images"),)),)),
        # unzips to mpii_human_pose_v1_u12_2/mpii_human_pose_v1_u12_1.mat (TensorLayer's loader);
        # the folder is found by the anchor, so the .mat lands in mpii/ either way
        Part("mpii_human_pose_v1_u12_2.zip", size="12.5 MB",
             url="https://datasets.d2.mpi-inf.mpg.de/andriluka14cvpr/mpii_human_pose_v1_u12_2.zip",
             layouts=(Layout("mpii_human_pose_v1_u12_1.mat"),)),
    ),
    licence="research only, no commercial use (the authors do not own the images' copyright)",
    size="12.9 GB", access="public", page="http://human-pose.mpi-inf.mpg.de/#download", tasks=(),
    finds="focus-data convert mpii reads mpii/mpii_human_pose_v1_u12_1.mat with --images mpii/images",
    next=("focus-data convert mpii {root}/mpii/mpii_human_pose_v1_u12_1.mat -o annotations.jsonl "
          "--images {root}/mpii/images",),
)

# Stanford 40 Actions: http://vision.stanford.edu/Datasets/40actions.html; each zip holds one folder
# (JPEGImages/, XMLAnnotations/, ImageSplits/), unzipped side by side into Stanford40/.
_S40 = "http://vision.stanford.edu/Datasets/"
_S40_TOTAL = "the dataset page's 9,532 images, not checked against the archives"
STANFORD40 = Dataset(
    name="stanford40", title="Stanford 40 Actions", folder="stanford40",
    parts=(
        Part("Stanford40_JPEGImages.zip", url=_S40 + "Stanford40_JPEGImages.zip",
             layouts=(Layout("JPEGImages/*.jpg", counts=(
                 Count("JPEGImages/*.jpg", 9532, strict=False, source=_S40_TOTAL),)),)),
        Part("Stanford40_XMLAnnotations.zip", url=_S40 + "Stanford40_XMLAnnotations.zip",
             layouts=(Layout("XMLAnnotations/*.xml", counts=(
                 Count("XMLAnnotations/*.xml", 9532, strict=False, source=_S40_TOTAL),)),)),
        # actions.txt: a header line `action_name<TAB>number_of_images`, then one line per class: 40
        Part("Stanford40_ImageSplits.zip", url=_S40 + "Stanford40_ImageSplits.zip",
             layouts=(Layout("ImageSplits/actions.txt", counts=(
                 Count("ImageSplits/actions.txt", 40, "rows", source="the 40 action classes"),
                 Count("ImageSplits/test.txt", 5532, "lines", strict=False,
                       source="9,532 images minus 100 training images per class"),)),)),
    ),
    licence="see the dataset page (terms not recorded here)", size="not published (9,532 images)",
    access="public", page="http://vision.stanford.edu/Datasets/40actions.html",
    tasks=("stanford40-action",),
    finds="stanford40/ImageSplits/{actions,test}.txt, JPEGImages/<name>.jpg, XMLAnnotations/<name>.xml",
    next=(EVAL + " --task stanford40-action",),
)

# Kinetics-400 (CVDF hosting, cvdfoundation/kinetics-dataset README): k400_val_path.txt lists the
# validation tarballs, each of flat <id>_<start>_<end>.mp4 clips (the CVDF extract scripts untar
# them into val/ and arrange_by_classes.py globs val/*.mp4). Counts from arrange_by_classes.py.
KINETICS400 = Dataset(
    name="kinetics400", title="Kinetics-400 (validation)", folder="kinetics400",
    parts=(
        Part("val.csv", url="https://s3.amazonaws.com/kinetics/400/annotations/val.csv",
             layouts=(Layout("val.csv", into="annotations", counts=(
                 Count("val.csv", 19906, "rows", source="cvdfoundation/kinetics-dataset arrange_by_classes.py"),)),)),
        Part("k400_val_path.txt", url="https://s3.amazonaws.com/kinetics/400/val/k400_val_path.txt",
             url_list=True, layouts=(Layout("**/*.mp4", into="videos/val"),)),   # flat, or in class folders
    ),
    counts=(Count("videos/val/**/*.mp4", 19881, strict=False,
                  source="cvdfoundation/kinetics-dataset arrange_by_classes.py, the clips still online"),),
    licence="annotations CC BY 4.0 (as hub copies state); clips are YouTube videos, rights with uploaders",
    size="about 29 GB (estimated)", access="public", page="https://github.com/cvdfoundation/kinetics-dataset",
    tasks=("kinetics400-action",),
    finds="kinetics400/annotations/val.csv + videos/val/*.mp4; `focus-data frames` caches middle frames",
    next=("focus-data frames --data-root {root}", EVAL + " --task kinetics400-action"),
)

# EMOTIC: access by request form (rkosti/emotic README: https://forms.gle/aCLLPAiqP8WeVChbA);
# the release holds emotic/{ade20k,emodb_small,framesdb,mscoco}/images and Annotations/Annotations.mat
# (Tandon-A/emotic README). The archives' names are not published, so their contents identify them.
_EMOTIC_DBS = ("ade20k/**", "emodb_small/**", "framesdb/**", "mscoco/**")
EMOTIC = Dataset(
    name="emotic", title="EMOTIC", folder="emotic",
    parts=(
        Part("the EMOTIC images archive (emotic/<database>/images/)", layouts=(Layout(
            "mscoco/images/*.jpg", into="emotic", keep=_EMOTIC_DBS, counts=(Count(
                "*/images/*.jpg", 23571, strict=False, source="a third-party count of 23,571 images"),)),)),
        Part("Annotations.mat (or an archive holding it)", layouts=(Layout(
            "Annotations.mat", into="Annotations", keep=("Annotations.mat",)),)),
    ),
    licence="non-commercial research and education only", size="not published (23,571 images)", access="form",
    page="https://forms.gle/aCLLPAiqP8WeVChbA",
    request="fill in the EMOTIC access form; the reply links the images archive and Annotations.mat",
    tasks=("emotic-emotion", "emotic-age"),
    finds="emotic/Annotations/Annotations.mat + emotic/emotic/<folder>/images/",
    next=(EVAL + " --task emotic-emotion --task emotic-age",),
)

# FER2013: the Kaggle competition "challenges-in-representation-learning-facial-expression-
# recognition-challenge" (account + accepting its rules). fer2013.tar.gz holds fer2013/fer2013.csv;
# the competition zip holds icml_face_data.csv; msambare/fer2013 holds train/ test/ class folders.
# MD5s as torchvision checks them (pytorch/vision torchvision/datasets/fer2013.py); 35,887 rows, as
# many as microsoft/FERPlus fer2013new.csv, which follows fer2013.csv row by row.
_FER_ROWS = "28,709 + 3,589 + 3,589 rows (fer2013new.csv of microsoft/FERPlus has as many)"
FER2013 = Dataset(
    name="fer2013", title="FER2013", folder="fer2013",
    parts=(Part("fer2013.tar.gz, icml_face_data.csv or the competition zip", layouts=(
        Layout("fer2013.csv", keep=("fer2013.csv",),
               counts=(Count("fer2013.csv", 35887, "rows", source=_FER_ROWS),),
               checksums=(("fer2013.csv", "md5:f8428a1edbd21e88f42c73edd2a14f95"),)),
        Layout("icml_face_data.csv", keep=("icml_face_data.csv",),
               counts=(Count("icml_face_data.csv", 35887, "rows", source=_FER_ROWS),),
               checksums=(("icml_face_data.csv", "md5:b114b9e04e6949e5fe8b6a98b3892b1d"),)),
        Layout("test/*/*.jpg", keep=("train/**", "test/**"), counts=(
            Count("test/*/*.jpg", 7178, strict=False,
                  source="the Kaggle copy msambare/fer2013, a third-party count"),)),
    )),),
    licence="Kaggle competition rules (ICML 2013 challenge)", size="not published (35,887 faces, 48×48)",
    access="account",
    page="https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge/data",
    request=("sign in to Kaggle, accept the competition rules, then download fer2013.tar.gz (or the whole "
             "competition zip: `kaggle competitions download -c challenges-in-representation-learning-"
             "facial-expression-recognition-challenge`)"),
    tasks=("fer2013-emotion",),
    finds="fer2013/fer2013.csv, or fer2013/icml_face_data.csv, or fer2013/test/<class>/*.jpg",
    next=(EVAL + " --task fer2013-emotion",),
)

# FER+: the relabelled votes from microsoft/FERPlus, pinned to commit ae2128a; size, rows and SHA-256
# recorded from that commit's blob. The reader joins it by row position with fer2013/fer2013.csv.
FERPLUS = Dataset(
    name="ferplus", title="FER+ (FER2013 relabelled)", folder="ferplus",
    parts=(Part("fer2013new.csv", size="1.6 MB",
                url="https://raw.githubusercontent.com/microsoft/FERPlus/"
                    "ae2128abf776409c93e50cf7c9d87180673314e6/fer2013new.csv",
                sha256="9206e20d62f56475939f516847d61753e4860caeac9718b560129541b776fc2c",
                layouts=(Layout("fer2013new.csv", counts=(
                    Count("fer2013new.csv", 35887, "rows", source="microsoft/FERPlus at ae2128a"),)),)),),
    licence="MIT (the labels); the images are FER2013's", size="1.6 MB (+ FER2013)", access="public",
    page="https://github.com/microsoft/FERPlus", needs=("fer2013",), tasks=("ferplus-emotion",),
    finds="ferplus/fer2013new.csv joined by row with fer2013/fer2013.csv (or icml_face_data.csv)",
    next=(EVAL + " --task ferplus-emotion",),
)

# FairFace (joojs/fairface README): images with padding 0.25 and the validation labels on Google
# Drive. The zip holds train/ and val/; counts from the MiVOLO README (86,744 train, 10,954 val).
FAIRFACE = Dataset(
    name="fairface", title="FairFace", folder="fairface",
    parts=(
        Part("fairface-img-margin025-trainval.zip",
             url=DRIVE.format(id="1Z1RqRo0_JiavaZw2yzZG6WETdZQ8qX86"),
             layouts=(Layout("val/*.jpg", into="fairface-img-margin025-trainval", counts=(
                 Count("val/*.jpg", 10954, strict=False, source="MiVOLO README"),
                 Count("train/*.jpg", 86744, strict=False, source="MiVOLO README"),)),)),
        Part("fairface_label_val.csv", url=DRIVE.format(id="1wOdja-ezstMEp81tX1a-EYkFebev4h7D"),
             layouts=(Layout("fairface_label_val.csv", counts=(
                 Count("fairface_label_val.csv", 10954, "rows", source="MiVOLO README: 10,954 val images"),)),)),
    ),
    licence="CC BY 4.0", size="551 MB (third-party figure)", access="public", page="https://github.com/joojs/fairface",
    tasks=("fairface-age", "fairface-race"),
    finds="fairface/fairface_label_val.csv + fairface/fairface-img-margin025-trainval/val/",
    next=(EVAL + " --task fairface-age --task fairface-race",),
)

_UTK_TOTAL = "jgabriellima/race_gender_recognition README: 12,391 male + 11,317 female"
# UTKFace "Aligned & Cropped Faces" (https://susanqq.github.io/UTKFace/): UTKFace.tar.gz on Google
# Drive (file id and resource key as linked from the page), members UTKFace/*.jpg.chip.jpg.
UTKFACE = Dataset(
    name="utkface", title="UTKFace (aligned & cropped)", folder="utkface",
    parts=(Part("UTKFace.tar.gz",
                url=DRIVE.format(id="0BxYys69jI14kYVM3aVhKS1VhRUk") + "&resourcekey=0-dabpv_3J0C0cditpiAfhAw",
                layouts=(Layout("UTKFace/*.jpg*", counts=(Count(
                    "UTKFace/*", 23708, strict=False, source=_UTK_TOTAL),)),)),),
    licence="non-commercial research only", size="about 100 MB (third-party figures)", access="public",
    page="https://susanqq.github.io/UTKFace/", tasks=("utkface-age", "utkface-race"),
    finds="utkface/UTKFace/<age>_<gender>_<race>_<date>.jpg.chip.jpg (labels from the names)",
    next=(EVAL + " --task utkface-age --task utkface-race",),
)

# LAGENDA (WildChlamydia/MiVOLO README and tools/download_lagenda.py): the benchmark images zip and
# the annotation CSV on Google Drive; img_name values are lag_benchmark/<hex>.jpg.
LAGENDA = Dataset(
    name="lagenda", title="LAGENDA", folder="lagenda",
    parts=(
        Part("lagenda_benchmark_images.zip", url=DRIVE.format(id="1QXO0NlkABPZT6x1_0Uc2i6KAtdcrpTbG"),
             layouts=(Layout("lag_benchmark/*.jpg", counts=(Count(
                 "lag_benchmark/*.jpg", 67159, strict=False, source="third-party statistics, unverified"),)),)),
        Part("lagenda_annotation.csv", url=DRIVE.format(id="1mNYjYFb3MuKg-OL1UISoYsKObMUllbJx"),
             layouts=(Layout("lagenda_annotation.csv", counts=(Count(
                 "lagenda_annotation.csv", 347509, "rows", strict=False,
                 source="third-party statistics, unverified"),)),)),
    ),
    licence="see the MiVOLO repository (terms not recorded here); cite the MiVOLO paper",
    size="not published (67,159 images)",
    access="public", page="https://github.com/WildChlamydia/MiVOLO#dataset",
    tasks=("lagenda-age-body", "lagenda-age-face"),
    finds="lagenda/lagenda_annotation.csv + lagenda/lag_benchmark/",
    next=(EVAL + " --task lagenda-age-body --task lagenda-age-face",),
)

CATALOG: dict[str, Dataset] = {d.name: d for d in (MPII, STANFORD40, KINETICS400, EMOTIC, FER2013, FERPLUS,
                                                  FAIRFACE, UTKFACE, LAGENDA)}
