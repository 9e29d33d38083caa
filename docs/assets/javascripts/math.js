// 用本地 KaTeX 渲染公式。Markdown 页面里的公式由 pymdownx.arithmatex 包成 .arithmatex，
// 分隔符为 \( \) 与 \[ \]；notebook 页面（.jupyter-wrapper）里保留 $ 与 $$。
// 解析失败时 auto-render 把错误写到控制台并保留原文，浏览器测试会发现。
document$.subscribe(({ body }) => {
  const inline = { left: "\\(", right: "\\)", display: false }
  const display = { left: "\\[", right: "\\]", display: true }
  body.querySelectorAll(".arithmatex").forEach((el) =>
    renderMathInElement(el, { delimiters: [inline, display] }))
  body.querySelectorAll(".jupyter-wrapper").forEach((el) =>
    renderMathInElement(el, {
      delimiters: [
        { left: "$$", right: "$$", display: true },
        { left: "$", right: "$", display: false },
        inline, display,
      ],
    }))
})
