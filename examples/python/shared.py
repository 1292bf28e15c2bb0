"""The "shared counter / shared list" of multiprocessing.Manager, done as a
zpipe job: the python plugin's func runs per task on the workers, the
reducer folds the results at the sink, and the job's one record is the
final value.

    zpipe run --plugin python --reduce --config path=examples/python \\
        --config func=shared:square --config codec=json \\
        --config reduce=shared:collect --config reduce_final=shared:summary \\
        --input numbers.txt --format lines

prints {"count":N,"total":...,"values":[...sorted squares...]}. Results
arrive in any order, so the fold is commutative and the order is made in
the final step.
"""


def square(n):
    """The task: one JSON number in, its square out."""
    return n * n


def collect(acc, value):
    """Fold one result into the shared state: a counter and a list."""
    if acc is None:
        acc = {"count": 0, "total": 0, "values": []}
    acc["count"] += 1
    acc["total"] += value
    acc["values"].append(value)
    return acc


def summary(acc):
    """The job's value: the state with the list in order."""
    acc = acc or {"count": 0, "total": 0, "values": []}
    acc["values"].sort()
    return acc
