import mkdocs_gen_files
for name in ("gallery.md", "benchmarks.md"):
    with mkdocs_gen_files.open(name, "w") as f:
        f.write("# placeholder\n")
