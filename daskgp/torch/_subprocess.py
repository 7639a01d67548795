"""``Train(spawn_subprocess=True)``: the training step runs in a spawned child process that owns
the model, optimizer and device; batches go to it and outputs come back through a pipe."""

from __future__ import annotations

import multiprocessing
import traceback

from ..errors import PipelineSetupError


class SubprocessStep:
    """A ``TrainStep`` living in a spawned child process, with the same ``run``/``stop``.

    Spawned, never forked: the child starts clean (no copy of the parent's threads, CUDA
    context or dask pool) and gets the step by pickling, so model, loss and optimizer must
    pickle (a loss defined as a lambda or inside a function does not). The parent's ``model``
    is not updated; the checkpoints are the trained weights. Internal.
    """

    def __init__(self, step) -> None:
        context = multiprocessing.get_context("spawn")
        self.node = step.node
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(step, child), daemon=True,
                                        name=f"daskgp-{step.node}")
        try:
            self._process.start()
        except Exception as error:
            raise PipelineSetupError(
                f"{step.node}: spawn_subprocess=True needs the model, loss and optimizer to "
                f"pickle (define them at module level): {type(error).__name__}: {error}"
            ) from error
        finally:
            child.close()
        self.iteration = self._receive()

    def run(self, data: dict, requested: list):
        """One training step in the child process (see ``TrainStep.run``)."""
        self._connection.send((data, requested))
        return self._receive()

    def _receive(self):
        try:
            status, value, child_traceback = self._connection.recv()
        except EOFError:
            self._process.join(timeout=5)
            raise RuntimeError(
                f"{self.node}: the training process died (exit code {self._process.exitcode})"
            ) from None
        if status == "error":
            value.add_note(f"in the training process of {self.node}:\n{child_traceback}")
            raise value
        return value

    def stop(self) -> None:
        """Let the child close its logs and exit; end it if it does not within 10 s."""
        if self._process.is_alive():
            try:
                self._connection.send(None)
                self._receive()
            except (OSError, RuntimeError, EOFError):
                pass
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join()
        self._connection.close()


def _serve(step, connection) -> None:
    """The child process: start the step, then run it on each message until ``None``."""

    def reply(call):
        try:
            connection.send(("ok", call(), None))
        except Exception as error:
            try:
                connection.send(("error", error, traceback.format_exc()))
            except Exception:  # the error itself does not pickle
                connection.send(("error", RuntimeError(repr(error)), traceback.format_exc()))
            return False
        return True

    if not reply(lambda: (step.start(), step.iteration)[1]):
        return
    while True:
        message = connection.recv()
        if message is None:
            reply(step.stop)
            return
        reply(lambda message=message: step.run(*message))
