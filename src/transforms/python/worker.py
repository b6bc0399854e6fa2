"""flowline's Python worker: runs the `transform` function of one script on
every batch of a pipeline run, in one long-lived process.

flowline starts it as `python -c <this file> SCRIPT API` and speaks to it
over the process's original stdin and stdout (see worker.rs):

- flowline -> worker, per batch: an 8-byte little-endian length, then that
  many bytes holding one Arrow IPC stream (the schema and one batch).
- worker -> flowline: frames of a 1-byte tag, an 8-byte little-endian length
  and the payload. `R` (ready, once, payload: the API in use) after the
  script loaded; `B` per batch: an Arrow IPC stream of the result (zero rows
  when the function dropped them all); `E`: a UTF-8 error message (a
  traceback, or what to install), after which flowline stops the worker.

What the user's code prints goes to stderr, so that it cannot corrupt the
channel. The worker ends when its stdin closes.
"""

import importlib.util
import inspect
import os
import struct
import sys
import traceback

LENGTH = struct.Struct("<Q")
# The name of this file in tracebacks (`<string>` when run with `python -c`).
WORKER_FILE = globals().get("__file__", "<string>")


def install_hint(module):
    """How to install `module` into the interpreter running this worker."""
    return f"install it with: {sys.executable} -m pip install {module.split('.')[0]}"


class Channel:
    """The frames to and from flowline, over the original stdin and stdout."""

    def __init__(self):
        self.reader = os.fdopen(os.dup(0), "rb", buffering=0)
        self.writer = os.fdopen(os.dup(1), "wb")
        # The user's code reads nothing from stdin, and what it prints
        # (Python or C code alike) goes to stderr.
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)
        sys.stdout = sys.stderr

    def send(self, tag, payload):
        self.writer.write(tag + LENGTH.pack(len(payload)))
        self.writer.write(payload)
        self.writer.flush()

    def fail(self, message):
        self.send(b"E", message.encode("utf-8", "replace"))

    def receive(self):
        """The next batch's bytes, or None when flowline closed the channel."""
        header = self.read_exactly(LENGTH.size)
        if header is None:
            return None
        (length,) = LENGTH.unpack(header)
        data = self.read_exactly(length)
        if data is None:
            raise EOFError("flowline closed the channel in the middle of a batch")
        return data

    def read_exactly(self, length):
        buffer = bytearray(length)
        view = memoryview(buffer)
        done = 0
        while done < length:
            count = self.reader.readinto(view[done:])
            if not count:
                return None
            done += count
        return buffer


def user_traceback(error):
    """The traceback of `error` from the user's code on (the worker's own
    frames left out)."""
    def ours(filename):
        return filename == WORKER_FILE or filename.startswith("<frozen importlib")

    tb = error.__traceback__
    while tb is not None and ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb)).rstrip()


def load_script(path):
    """The user's module, imported from its file; its folder is importable
    so that it can import modules next to it."""
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location("flowline_transform", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def detect_api(function):
    """`arrow` when the first parameter is annotated as a pyarrow Table,
    else `pandas`."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return "pandas"
    if not parameters:
        return "pandas"
    annotation = parameters[0].annotation
    if isinstance(annotation, str):
        name = annotation
    else:
        name = f"{getattr(annotation, '__module__', '')}.{getattr(annotation, '__qualname__', '')}"
    last = name.rsplit(".", 1)[-1]
    return "arrow" if last == "Table" and ("pyarrow" in name or name.startswith("pa.")) else "pandas"


def make_call(function, api, pa):
    """A function from a pyarrow Table to a pyarrow Table that calls the
    user's function through the chosen API."""
    if api == "arrow":
        def call(table):
            out = function(table)
            if isinstance(out, pa.RecordBatch):
                out = pa.Table.from_batches([out])
            if not isinstance(out, pa.Table):
                raise TypeError(
                    f"transform must return a pyarrow.Table, not {type(out).__name__}")
            return out
        return call

    import pandas as pd

    # Integers and booleans become pandas' nullable types (every operator
    # works on them, NULL stays NULL); every other column is Arrow-backed,
    # so decimals, time zones, timestamp units and NaN apart from NULL stay
    # as they were. Both convert back to the same Arrow types.
    nullable = {
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }

    def dtype(arrow_type):
        return nullable.get(arrow_type) or pd.ArrowDtype(arrow_type)

    def call(table):
        frame = table.to_pandas(types_mapper=dtype)
        out = function(frame)
        if not isinstance(out, pd.DataFrame):
            raise TypeError(
                f"transform must return a pandas.DataFrame, not {type(out).__name__}")
        return pa.Table.from_pandas(out, preserve_index=False)
    return call


def encode(pa, table):
    """`table` as one Arrow IPC stream."""
    table = table.replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def start(channel, script, api):
    """Imports what the step needs and the script; the call to make per
    batch, or None after reporting why it cannot run."""
    try:
        import pyarrow as pa
        import pyarrow.ipc  # noqa: F401
    except ImportError:
        channel.fail(f"the python step needs the module pyarrow, which is not installed for "
                     f"{sys.executable}: {install_hint('pyarrow')}")
        return None
    try:
        module = load_script(script)
    except ModuleNotFoundError as error:
        if error.name is None:
            channel.fail(user_traceback(error))
        else:
            channel.fail(f"the script imports the module {error.name}, which is not installed for "
                         f"{sys.executable}: {install_hint(error.name)}\n\n{user_traceback(error)}")
        return None
    except BaseException as error:
        channel.fail(f"the script failed to load:\n{user_traceback(error)}")
        return None
    function = getattr(module, "transform", None)
    if not callable(function):
        channel.fail(f"the script defines no function transform: add "
                     f"`def transform(df): ... return df` (a pandas DataFrame in and out), or "
                     f"`def transform(table: pyarrow.Table) -> pyarrow.Table`")
        return None
    if api == "auto":
        api = detect_api(function)
    try:
        call = make_call(function, api, pa)
    except ModuleNotFoundError as error:
        channel.fail(f"a DataFrame function needs the module {error.name}, which is not "
                     f"installed for {sys.executable}: {install_hint(error.name)} (or take a "
                     f"pyarrow.Table: annotate the parameter, or set api = \"arrow\")")
        return None
    channel.send(b"R", api.encode())
    return lambda data: encode(pa, call(pa.ipc.open_stream(pa.py_buffer(data)).read_all()))


def main():
    script, api = sys.argv[1], sys.argv[2]
    channel = Channel()
    run = start(channel, script, api)
    if run is None:
        return 2
    while True:
        data = channel.receive()
        if data is None:
            return 0
        try:
            result = run(data)
        except BaseException as error:
            channel.fail(user_traceback(error))
            continue
        channel.send(b"B", result)


if __name__ == "__main__":
    sys.exit(main())
