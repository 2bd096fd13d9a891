"""``python -m tests.soak`` (what ``make soak`` runs)."""

from tests.soak.runner import main  # absolute: see _worker

if __name__ == "__main__":  # a process executor's worker imports __main__ again: do nothing then
    main()
