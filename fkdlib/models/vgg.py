"""VGG with batch norm for CIFAR, after RepDistiller ``models/vgg.py``.

RepDistiller's ``vgg8``/``vgg11``/... names map to its ``*_bn`` variants, as in its ``model_dict``.
"""
import math

import torch.nn as nn
import torch.nn.functional as F

CFG = {
    "S": [[64], [128], [256], [512], [512]],
    "A": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "B": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "D": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "E": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def _make_block(widths, in_channels):
    layers = []
    for v in widths:
        layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
        in_channels = v
    # The block's last ReLU is dropped: forward applies it so it can expose the pre-activation.
    return nn.Sequential(*layers[:-1])


class VGG(nn.Module):
    """RepDistiller ``models/vgg.py`` ``VGG`` with ``batch_norm=True``; ``feats[-1]`` has D = 512.

    ``preact=True`` swaps features 1-4 for the block outputs before their final ReLU.
    """

    def __init__(self, cfg, num_classes=100):
        super().__init__()
        self.block0 = _make_block(cfg[0], 3)
        self.block1 = _make_block(cfg[1], cfg[0][-1])
        self.block2 = _make_block(cfg[2], cfg[1][-1])
        self.block3 = _make_block(cfg[3], cfg[2][-1])
        self.block4 = _make_block(cfg[4], cfg[3][-1])
        self.pool0 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool3 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool4 = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(512, num_classes)
        self._initialize_weights()

    def forward(self, x, is_feat=False, preact=False):
        h = x.shape[2]
        x = F.relu(self.block0(x))
        f0 = x
        x = self.block1(self.pool0(x))
        f1_pre = x
        x = F.relu(x)
        f1 = x
        x = self.block2(self.pool1(x))
        f2_pre = x
        x = F.relu(x)
        f2 = x
        x = self.block3(self.pool2(x))
        f3_pre = x
        x = F.relu(x)
        f3 = x
        if h == 64:
            x = self.pool3(x)
        x = self.block4(x)
        f4_pre = x
        x = F.relu(x)
        f4 = x
        x = self.pool4(x).flatten(1)
        f5 = x
        x = self.classifier(x)
        if not is_feat:
            return x
        if preact:
            return [f0, f1_pre, f2_pre, f3_pre, f4_pre, f5], x
        return [f0, f1, f2, f3, f4, f5], x

    def _initialize_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))
                m.bias.data.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 0.01)
                m.bias.data.zero_()


def vgg8(num_classes=100):
    """RepDistiller ``vgg8_bn`` (registered as ``vgg8``); D = 512."""
    return VGG(CFG["S"], num_classes)


def vgg11(num_classes=100):
    """RepDistiller ``vgg11_bn`` (registered as ``vgg11``); D = 512."""
    return VGG(CFG["A"], num_classes)


def vgg13(num_classes=100):
    """RepDistiller ``vgg13_bn`` (registered as ``vgg13``); D = 512."""
    return VGG(CFG["B"], num_classes)


def vgg16(num_classes=100):
    """RepDistiller ``vgg16_bn`` (registered as ``vgg16``); D = 512."""
    return VGG(CFG["D"], num_classes)


def vgg19(num_classes=100):
    """RepDistiller ``vgg19_bn`` (registered as ``vgg19``); D = 512."""
    return VGG(CFG["E"], num_classes)
