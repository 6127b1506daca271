"""CIFAR ResNets (resnet8 ... resnet110, resnet8x4, resnet32x4), after RepDistiller ``models/resnet.py``.

The last block of every stage returns ``(out, preact)`` so the network can expose the
pre-ReLU stage outputs, exactly as in RepDistiller.
"""
import torch.nn as nn
import torch.nn.functional as F


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None, is_last=False):
        super().__init__()
        self.is_last = is_last
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        preact = out + residual
        out = F.relu(preact)
        return (out, preact) if self.is_last else out


class ResNet(nn.Module):
    """RepDistiller ``models/resnet.py`` ``ResNet`` with basic blocks; D = ``num_filters[3]``.

    RepDistiller's unused ``block_name="bottleneck"`` option is left out.

    ``preact=True`` swaps features 1-3 for the stage outputs before their final ReLU
    (RepDistiller wraps that case as ``[feats, logits]``; here it is a tuple like the other case).
    """

    def __init__(self, depth, num_filters, num_classes=100):
        super().__init__()
        assert (depth - 2) % 6 == 0, "depth should be 6n+2, e.g. 20, 32, 44, 56, 110"
        n = (depth - 2) // 6
        self.inplanes = num_filters[0]
        self.conv1 = nn.Conv2d(3, num_filters[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(num_filters[1], n)
        self.layer2 = self._make_layer(num_filters[2], n, stride=2)
        self.layer3 = self._make_layer(num_filters[3], n, stride=2)
        # RepDistiller uses AvgPool2d(8): identical on 32x32 inputs, and this one also handles 64 and 96.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(num_filters[3], num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample, is_last=(blocks == 1))]
        self.inplanes = planes
        for i in range(1, blocks):
            layers.append(BasicBlock(self.inplanes, planes, is_last=(i == blocks - 1)))
        return nn.Sequential(*layers)

    def forward(self, x, is_feat=False, preact=False):
        x = self.relu(self.bn1(self.conv1(x)))
        f0 = x
        x, f1_pre = self.layer1(x)
        f1 = x
        x, f2_pre = self.layer2(x)
        f2 = x
        x, f3_pre = self.layer3(x)
        f3 = x
        x = self.avgpool(x).flatten(1)
        f4 = x
        x = self.fc(x)
        if not is_feat:
            return x
        if preact:
            return [f0, f1_pre, f2_pre, f3_pre, f4], x
        return [f0, f1, f2, f3, f4], x


def _resnet(name, depth, widths):
    def factory(num_classes=100):
        return ResNet(depth, widths, num_classes=num_classes)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"RepDistiller ``{name}`` (models/resnet.py); D = {widths[3]}."
    return factory


_NARROW = [16, 16, 32, 64]
_WIDE = [32, 64, 128, 256]
resnet8 = _resnet("resnet8", 8, _NARROW)
resnet14 = _resnet("resnet14", 14, _NARROW)
resnet20 = _resnet("resnet20", 20, _NARROW)
resnet32 = _resnet("resnet32", 32, _NARROW)
resnet44 = _resnet("resnet44", 44, _NARROW)
resnet56 = _resnet("resnet56", 56, _NARROW)
resnet110 = _resnet("resnet110", 110, _NARROW)
resnet8x4 = _resnet("resnet8x4", 8, _WIDE)
resnet32x4 = _resnet("resnet32x4", 32, _WIDE)
