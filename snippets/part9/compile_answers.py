# --8<-- [start:imports]
import torch
import torch._dynamo

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def graph_report(fn, *args) -> tuple[int, int, list[str]]:
    """torch._dynamo.explain：图的个数、图中断的次数、每次中断原因的第一行。"""
    torch._dynamo.reset()
    report = torch._dynamo.explain(fn)(*args)
    reasons = [r.reason.splitlines()[0] for r in report.break_reasons]
    return report.graph_count, report.graph_break_count, reasons
# --8<-- [end:imports]

# --8<-- [start:ex1]
def scale_item(x: torch.Tensor) -> torch.Tensor:
    return x / x.abs().max().item()      # .item() 把张量变成 Python 数


def scale_tensor(x: torch.Tensor) -> torch.Tensor:
    return x / x.abs().max()             # 留在张量里：0 维张量照样广播


def with_print(x: torch.Tensor) -> torch.Tensor:
    y = torch.sin(x)
    print("调试：", y.sum())
    return y * 2


x = torch.randn(8, 4, device=device)
results = {fn.__name__: graph_report(fn, x) for fn in (scale_item, scale_tensor, with_print)}
for name, (graphs, breaks, reasons) in results.items():
    print(f"{name}：{graphs} 张图，{breaks} 次图中断，原因 {reasons}")
assert results["scale_item"][:2] == (2, 1) and "item()" in results["scale_item"][2][0]
assert results["scale_tensor"][:2] == (1, 0)
assert results["with_print"][:2] == (2, 1) and "builtin operator" in results["with_print"][2][0]
assert torch.allclose(scale_item(x), scale_tensor(x), rtol=1e-6, atol=0)
# --8<-- [end:ex1]

# --8<-- [start:ex2]
def compiles(values: list, as_tensor: bool) -> list[list[str]]:
    """用同一个 x 和不同的 scale 调用编译后的 x * scale，记下每次编译出的图有哪些输入。"""
    torch._dynamo.reset()
    seen = []

    def backend(gm, example_inputs):
        seen.append([type(a).__name__ for a in example_inputs])   # 常量 scale 写死在图里，不是输入
        return gm.forward

    fn = torch.compile(lambda x, scale: x * scale, backend=backend)
    x = torch.randn(4, device=device)
    for v in values:
        fn(x, torch.tensor(v, device=device) if as_tensor else v)
    return seen


as_int, as_tensor = compiles([2, 3, 4, 5], False), compiles([2, 3, 4, 5], True)
print("scale 是 Python int：编译", len(as_int), "次，各图的输入", as_int)
print("scale 是张量：编译", len(as_tensor), "次，各图的输入", as_tensor)
assert as_int == [["Tensor"], ["Tensor", "SymInt"]]
assert as_tensor == [["Tensor", "Tensor"]]
# --8<-- [end:ex2]
