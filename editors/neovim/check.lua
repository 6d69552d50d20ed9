-- Used by tests/it/nvim.rs: waits for uhc's diagnostics in the current buffer, asks for a
-- hover at $UHC_HOVER_LINE:$UHC_HOVER_COL (0-based), writes both to $UHC_NVIM_OUT, redraws,
-- signals `tmux wait-for $UHC_TMUX_SIGNAL` when run inside tmux, and quits unless
-- $UHC_NVIM_STAY is set. Every wait is for an event, with a long timeout that only fires
-- on failure.
local buf = vim.api.nvim_get_current_buf()
local out = assert(io.open(vim.env.UHC_NVIM_OUT, "w"))
vim.wait(120000, function() return #vim.diagnostic.get(buf) > 0 end, 10)
for _, d in ipairs(vim.diagnostic.get(buf)) do
  local code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code)
  out:write(string.format("diagnostic %s line %d: %s\n", tostring(code), d.lnum + 1,
    (d.message:gsub("\n", " | "))))
end
local params = {
  textDocument = { uri = vim.uri_from_bufnr(buf) },
  position = { line = tonumber(vim.env.UHC_HOVER_LINE), character = tonumber(vim.env.UHC_HOVER_COL) },
}
local replies = vim.lsp.buf_request_sync(buf, "textDocument/hover", params, 120000) or {}
for _, r in pairs(replies) do
  if r.result then
    out:write("hover " .. (r.result.contents.value:gsub("\n", " | ")) .. "\n")
  end
end
out:close()
vim.cmd("redraw!")
if vim.env.UHC_TMUX_SIGNAL then
  vim.fn.system({ "tmux", "wait-for", "-S", vim.env.UHC_TMUX_SIGNAL })
end
if not vim.env.UHC_NVIM_STAY then
  vim.cmd("qall!")
end
