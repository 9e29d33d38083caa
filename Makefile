# 两条命令：make serve（在 http://127.0.0.1:8000 阅读本书）与 make test（运行全部测试）。
# 两者都会先把 requirements.txt 里锁定的依赖装进本地的 .venv（只在 requirements.txt 变化后重装）。
PYTHON ?= python3
JOBS   ?= auto
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-requirements
export NO_MKDOCS_2_WARNING := 1

.PHONY: serve test build offline outputs diagrams reproduce corpus vendor bench install clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(STAMP)

serve: $(STAMP)            ## 本地阅读：修改页面或片段后自动重建
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

test: $(STAMP)             ## 全部测试：片段（CPU，有 GPU 时再跑 CUDA）、页面、输出、站点构建、浏览器；JOBS=进程数（默认每核一个）
	$(BIN)/python -m pytest -n $(JOBS) $(PYTEST_ARGS)

build: $(STAMP)            ## 严格构建站点到 site/
	$(BIN)/mkdocs build --strict

offline: $(STAMP)          ## 离线版：dist/dl-book-offline.zip，解压后直接打开 dl-book/index.html（无需服务器，可搜索）
	$(BIN)/python -m tests.tooling.offline

outputs: $(STAMP)          ## 重新生成输出（*.out.txt）与图（docs/<部分>/figures/*.svg）；FILES=片段路径 只重跑部分
	$(BIN)/python -m tests.tooling.outputs $(FILES)

diagrams: $(STAMP)         ## 把页面里的 Mermaid 图预先渲染成 docs/<部分>/diagrams/*.svg（本地 Mermaid，无头 Chromium）；PAGES=页面路径 只渲染部分
	$(BIN)/python -m tests.tooling.diagrams $(PAGES)

reproduce: $(STAMP)        ## 完整复现第 12 部分的实验（单线程约 45 分钟：MNIST-1D 15 分钟，ResNet 8 分钟，grokking 23 分钟），重写 docs/<部分>/results/*.json；CASES=名字 只跑部分
	$(BIN)/python -m tests.tooling.reproduce $(CASES)

corpus: $(STAMP)           ## 从 HEAD 提交的页面重新生成本书语料快照：docs/part4/book_corpus.txt（第 4、5 部分的语言模型用它）与带标签的 docs/part8/book_corpus.jsonl（第 8 部分用它）；WHICH=part8 只生成其一；之后提交并重跑读它的片段
	$(BIN)/python -m tests.tooling.corpus $(WHICH)

vendor: $(STAMP)           ## 从 npm 重新取回 KaTeX 与 Mermaid（版本锁定在 tests/tooling/vendor.py）
	$(BIN)/python -m tests.tooling.vendor

bench: $(STAMP)            ## 打印基准表：测试耗时、最慢的片段、构建耗时、站点大小
	$(BIN)/python -m tests.tooling.bench

clean:
	rm -rf site .cache dist .bench
