module mozaiks.local/tool

go 1.24
