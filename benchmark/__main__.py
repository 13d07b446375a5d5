import sys

from benchmark.cli import main

if __name__ == "__main__":
    code = main()
    from benchmark.stop import exit_now

    exit_now(code)  # stopped (SIGTERM, Ctrl-C, a full disk): exit without the slow teardown
    sys.exit(code)
