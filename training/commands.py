"""The trainer's console commands of the installed package (terraform-train, terraform-export, ...).

Each runs its module's ``main()`` exactly as ``python -m training.<module>`` does, with the same exit status:
the mains return what their step made (a report, a manifest), which a console script must not hand to
``sys.exit`` (any object but None or an int exits with status 1).
"""


def train():
    from .train import main

    main()
    return 0


def export():
    from .export import main

    return 0 if main() else 1  # as `python -m training.export` (a failed check raises SystemExit)


def prepare():
    from .prepare import main

    main()
    return 0


def evaluate():
    from .evaluate import main

    main()
    return 0


def recalibrate():
    from .recalibrate import main

    main()
    return 0
