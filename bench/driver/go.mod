module restate-examples/bench/driver

go 1.24
