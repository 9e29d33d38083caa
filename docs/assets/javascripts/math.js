// notebook 页面（.jupyter-wrapper）的公式：用本地 KaTeX 渲染 Markdown 单元格里的 $…$ 与 $$…$$。
// 其余页面的公式已在构建时由 overrides/hooks/formulas.py 排好。解析失败时 auto-render 把错误写到控制台并保留原文，
// 浏览器测试会发现。
document$.subscribe(({ body }) => {
  body.querySelectorAll(".jupyter-wrapper").forEach((el) =>
    renderMathInElement(el, {
      delimiters: [
        { left: "$$", right: "$$", display: true },
        { left: "$", right: "$", display: false },
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
    }))
})
