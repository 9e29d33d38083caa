// 搜索索引按需加载：Material 在每个页面打开时就请求 search/search_index.json（本书约每页 10 KB，
// 全书 100 页时超过 1 MB）。本脚本在主题脚本之前运行，把这个请求挂起，直到读者第一次使用搜索
// （焦点进入搜索框：点搜索图标、按 / 或 s 快捷键都会如此）才真正发出。不搜索的读者不为索引付费。
// 离线版（file://）用 <script> 读取 search_index.js，不经过这里。
(function () {
  "use strict";
  var released = false, waiting = [];
  var open = XMLHttpRequest.prototype.open, send = XMLHttpRequest.prototype.send;

  XMLHttpRequest.prototype.open = function (method, url) {
    this.__bookSearchIndex = /\/search\/search_index\.json(?:$|\?)/.test(String(url));
    return open.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function () {
    if (this.__bookSearchIndex && !released) {
      waiting.push([this, arguments]);
      return;
    }
    return send.apply(this, arguments);
  };

  function release() {
    if (released) return;
    released = true;
    waiting.splice(0).forEach(function (call) { send.apply(call[0], call[1]); });
  }

  document.addEventListener("focusin", function (event) {
    var target = event.target;
    if (target && target.matches && target.matches("[data-md-component=search-query]")) release();
  });
})();
