"""Built-in data sets: lazy references only, so discovery never imports torch or tonic."""

import snnframe


@snnframe.hookimpl
def register_datasets(register):
    register("digits", "snnframe.builtins.datasets.digits:Digits")
    register("ndigits", "snnframe.builtins.datasets.ndigits:NDigits")
    register("mnist", "snnframe.builtins.datasets.mnist:MNIST")
    register("fashion_mnist", "snnframe.builtins.datasets.mnist:FashionMNIST")
    register("nmnist", "snnframe.builtins.datasets.nmnist:NMNIST")
    register("shd", "snnframe.builtins.datasets.shd:SHD")
    register("dvs_gesture", "snnframe.builtins.datasets.dvs_gesture:DVSGesture")
