from examples_runtime.serve import main

main()
