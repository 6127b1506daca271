"""MobileNetV2 for CIFAR (``mobile_half``), after RepDistiller ``models/mobilenetv2.py``."""
import math

import torch.nn as nn
import torch.nn.functional as F


def conv_bn(inp, oup, stride):
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


def conv_1x1_bn(inp, oup):
    return nn.Sequential(nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise 3x3 -> linear 1x1; the expansion conv is kept even when ``expand_ratio == 1``."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        assert stride in [1, 2]
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        hidden = inp * expand_ratio
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """RepDistiller ``models/mobilenetv2.py`` ``MobileNetV2``; D = 1280 for ``width_mult <= 1``.

    ``feats[-2]`` is the last inverted-residual stage's output, before the final 1x1 ``conv2``.
    The classifier is ``nn.Sequential(nn.Linear)`` as in RepDistiller (keys ``classifier.0.*``).
    ``preact`` is accepted and ignored, as in RepDistiller. Its unused ``remove_avg`` option is left out.
    """

    def __init__(self, T, num_classes=100, width_mult=1.0):
        super().__init__()
        setting = [
            # t, c, n, s
            [1, 16, 1, 1],
            [T, 24, 2, 1],
            [T, 32, 3, 2],
            [T, 64, 4, 2],
            [T, 96, 3, 1],
            [T, 160, 3, 2],
            [T, 320, 1, 1],
        ]
        input_channel = int(32 * width_mult)
        self.conv1 = conv_bn(3, input_channel, 2)
        self.blocks = nn.ModuleList([])
        for t, c, n, s in setting:
            output_channel = int(c * width_mult)
            layers = []
            for stride in [s] + [1] * (n - 1):
                layers.append(InvertedResidual(input_channel, output_channel, stride, t))
                input_channel = output_channel
            self.blocks.append(nn.Sequential(*layers))
        self.last_channel = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = conv_1x1_bn(input_channel, self.last_channel)
        self.classifier = nn.Sequential(nn.Linear(self.last_channel, num_classes))
        self._initialize_weights()

    def forward(self, x, is_feat=False, preact=False):
        out = self.conv1(x)
        f0 = out
        out = self.blocks[1](self.blocks[0](out))
        f1 = out
        out = self.blocks[2](out)
        f2 = out
        out = self.blocks[4](self.blocks[3](out))
        f3 = out
        out = self.blocks[6](self.blocks[5](out))
        f4 = out
        out = self.conv2(out)
        # RepDistiller uses AvgPool2d(2, ceil_mode=True), which averages the whole 2x2 map of a
        # 32x32 input: identical there, and this also handles 64 and 96.
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        f5 = out
        out = self.classifier(out)
        if is_feat:
            return [f0, f1, f2, f3, f4, f5], out
        return out

    def _initialize_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 0.01)
                m.bias.data.zero_()


def mobilenetv2_T_w(T, W, num_classes=100):
    """RepDistiller ``mobilenetv2_T_w``: expansion ratio T, width multiplier W; D = 1280 for W <= 1."""
    return MobileNetV2(T=T, num_classes=num_classes, width_mult=W)


def mobile_half(num_classes=100):
    """RepDistiller ``mobile_half`` (registered as ``MobileNetV2`` and ``mobile_half``): T=6, width 0.5; D = 1280."""
    return mobilenetv2_T_w(6, 0.5, num_classes)
