# --8<-- [start:versions]
import importlib
import sys

import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# 版本号去掉 "+cpu"、"+cu130" 这样的构建后缀，CPU 版和 CUDA 版打印相同
python_version = sys.version_info[:2]
torch_version = torch.__version__.split("+")[0]
print(f"PyTorch {torch_version}")

assert python_version >= (3, 10), (
    f"本书需要 Python ≥ 3.10，当前是 {python_version[0]}.{python_version[1]}："
    "请用更新的 Python 重新创建虚拟环境")
major_minor = tuple(int(part) for part in torch_version.split(".")[:2])
assert major_minor >= (2, 6), (
    f"本书代码需要 PyTorch ≥ 2.6（在 2.13.0 下验证），当前是 {torch.__version__}："
    "请运行 pip install -r requirements.txt 重新安装")
# --8<-- [end:versions]

# --8<-- [start:compute]
# 小整数的矩阵乘法在 float32 下没有舍入误差，任何设备上结果都应完全相同
a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
on_cpu = a @ a.T
on_device = (a.to(device) @ a.to(device).T).cpu()
print(on_device.to(torch.int64).tolist())

assert torch.equal(on_device, on_cpu), f"{device} 上的计算结果与 CPU 不一致"
# --8<-- [end:compute]

# --8<-- [start:packages]
# 本书代码用到的其余第三方包
needed = ["numpy", "sklearn", "matplotlib", "mnist1d", "jieba", "sacrebleu", "torchao", "rouge_score", "tokenizers",
          "optuna", "gymnasium", "captum"]
missing = []
for name in needed:
    try:
        importlib.import_module(name)
    except ImportError:
        missing.append(name)
print("缺少的包：" + ("、".join(missing) if missing else "无"))

assert not missing, f"缺少 {missing}：请运行 pip install -r requirements.txt"
# --8<-- [end:packages]

# --8<-- [start:seed]
# 同一个种子产生同一串随机数
torch.manual_seed(0)
first = torch.randn(3)
torch.manual_seed(0)
second = torch.randn(3)
print(first)

assert torch.equal(first, second)
# --8<-- [end:seed]
