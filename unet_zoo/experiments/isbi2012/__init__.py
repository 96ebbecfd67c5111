"""The U-Net paper's ISBI 2012 experiment, in one place.

`data`: the three TIFF stacks (find, check, download, load; registered as the recipes' data source
``"isbi2012"``); `evaluation`: a model scored on the held-out slices; `reproduce`: `unet-zoo reproduce isbi`,
train a variant's recipe, score it, publish its Hub folder beside the paper's Table 1 (`paper`);
`timing`: the wall time of a reproduction, for the benchmark suite.
"""

from unet_zoo.experiments.isbi2012 import data as data  # registers the data source "isbi2012"
