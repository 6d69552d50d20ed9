-- uhc's language server for `.uh` files. Works on Neovim 0.7 and later; put it in your
-- config (e.g. ~/.config/nvim/after/plugin/uhc.lua) or load it with `nvim -u`.
-- `uhc` must be on PATH (or set $UHC to the binary).
vim.cmd([[autocmd BufRead,BufNewFile *.uh setfiletype uh]])
vim.api.nvim_create_autocmd("FileType", {
  pattern = "uh",
  callback = function(args)
    local id = vim.lsp.start_client({
      name = "uhc",
      cmd = { vim.env.UHC or "uhc", "lsp" },
      root_dir = vim.fn.fnamemodify(args.file, ":p:h"),
    })
    if id then vim.lsp.buf_attach_client(args.buf, id) end
  end,
})
