"""Wide ResNets (wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2), after RepDistiller ``models/wrn.py``."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU before each conv, 1x1 ``convShortcut`` when widths differ."""

    def __init__(self, in_planes, out_planes, stride, dropRate=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.droprate = dropRate
        self.equalInOut = in_planes == out_planes
        self.convShortcut = None
        if not self.equalInOut:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False)

    def forward(self, x):
        # When the widths differ the shortcut also starts from the BN-ReLU'd input, as in RepDistiller.
        if self.equalInOut:
            out = self.relu1(self.bn1(x))
        else:
            x = self.relu1(self.bn1(x))
            out = x
        out = self.relu2(self.bn2(self.conv1(out)))
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(out)
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class NetworkBlock(nn.Module):
    def __init__(self, nb_layers, in_planes, out_planes, block, stride, dropRate=0.0):
        super().__init__()
        self.layer = nn.Sequential(
            *[
                block(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, dropRate)
                for i in range(nb_layers)
            ]
        )

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    """RepDistiller ``models/wrn.py`` ``WideResNet``; D = 64 * widen_factor.

    ``feats[1:4]`` are the raw stage outputs, before the next BN-ReLU (``feats[-2]`` is the
    last stage's output before the final ``bn1``). ``preact=True`` passes them through the BN
    that follows each of them (``block2.layer[0].bn1``, ``block3.layer[0].bn1``, ``bn1``) without
    the ReLU; in train mode that second BN call updates those running statistics again, as in RepDistiller.
    """

    def __init__(self, depth, num_classes=100, widen_factor=1, dropRate=0.0):
        super().__init__()
        nChannels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        assert (depth - 4) % 6 == 0, "depth should be 6n+4"
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, nChannels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, nChannels[0], nChannels[1], BasicBlock, 1, dropRate)
        self.block2 = NetworkBlock(n, nChannels[1], nChannels[2], BasicBlock, 2, dropRate)
        self.block3 = NetworkBlock(n, nChannels[2], nChannels[3], BasicBlock, 2, dropRate)
        self.bn1 = nn.BatchNorm2d(nChannels[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(nChannels[3], num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def forward(self, x, is_feat=False, preact=False):
        out = self.conv1(x)
        f0 = out
        out = self.block1(out)
        f1 = out
        out = self.block2(out)
        f2 = out
        out = self.block3(out)
        f3 = out
        out = self.relu(self.bn1(out))
        # RepDistiller uses avg_pool2d(out, 8): identical on 32x32 inputs, and this also handles 64 and 96.
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        f4 = out
        out = self.fc(out)
        if not is_feat:
            return out
        if preact:
            f1 = self.block2.layer[0].bn1(f1)
            f2 = self.block3.layer[0].bn1(f2)
            f3 = self.bn1(f3)
        return [f0, f1, f2, f3, f4], out


def wrn_16_1(num_classes=100):
    """RepDistiller ``wrn_16_1`` (models/wrn.py); D = 64."""
    return WideResNet(depth=16, num_classes=num_classes, widen_factor=1)


def wrn_16_2(num_classes=100):
    """RepDistiller ``wrn_16_2`` (models/wrn.py); D = 128."""
    return WideResNet(depth=16, num_classes=num_classes, widen_factor=2)


def wrn_40_1(num_classes=100):
    """RepDistiller ``wrn_40_1`` (models/wrn.py); D = 64."""
    return WideResNet(depth=40, num_classes=num_classes, widen_factor=1)


def wrn_40_2(num_classes=100):
    """RepDistiller ``wrn_40_2`` (models/wrn.py); D = 128."""
    return WideResNet(depth=40, num_classes=num_classes, widen_factor=2)
