"""The mission soak of an int8 network: its accuracy over mission time under radiation.

The network's weights and biases stay resident in the scratchpad, loaded at the start and
after every reset or reload, as a flight system keeps a model on its accelerator; B of
each layer lies in bank 1 (docs/REGISTERS.md), the biases after them, the activations in
bank 0. Inferences run one test image each at the soak's duty cycle, the test set in
turn: for each layer the flight software stages A, programs the job, starts it and
reads C back through ECC, and C becomes the next layer's A. Upsets arrive and land as in
every soak (``campaign.soak``: the environment's Poisson process, clusters, SEFIs,
latch-ups, the scrubber at its period, the same recoveries).

What an inference delivers depends only on what its jobs read: the activations it
stages itself, and the resident weights. Between two changes of the chip's state (an
upset landing, a word repaired, a reload) every inference of a test image therefore
delivers the same answer, which is the network computed with the chip's arithmetic on
the weights as the chip reads them (each word through the SECDED decoder). The soak
computes that for the whole test set once per state and counts each inference of the
stretch by its image. Inferences run as real chip jobs on the model instead where the
state alone does not say what they do: after an upset in a register (its effect is on
the next job), while a weight word is uncorrectable (that job ends in error and the
flight software reloads the weights), and at every sample of the time series, where the
real inference must deliver exactly what the computed state said (the soak stops
otherwise; ``run_every_job`` runs every inference so, to check the stretches). An
inference rewrites the activation area, so an upset that lands there is gone by the next
one. A reset after a hang or a SEFI, and a power cycle after a latch-up, end with the
weights loaded again, which also ends what upsets had done to them.

Per sample of mission time: the inferences due, and the shares answered right (the
predicted class is the label), silently wrong (logits differ from the fault-free run's,
nothing reported), with a changed class among them, and with no answer (detected,
hung, or the chip down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from campaign.outcome import MITIGATION_COUNTERS, Observation, Outcome, classify
from campaign.soak import JOB_REGS, MASK32, _Soak
from firmware_sim.accel import Accelerator, EccStatus
from firmware_sim.accel.packing import pack_a, pack_b, pack_bias, unpack_b, unpack_bias
from firmware_sim.accel.regs import ERR_CODE_SHIFT, Ctrl, Reg, Resp, Status

#: Per-sample counts of a network soak, besides the inferences due.
SAMPLE_KEYS = ("right", "sdc", "class_changed", "no_answer")


@dataclass(frozen=True)
class _Resident:
    """Where one layer's operands lie: B and the bias resident, A and C in bank 0."""

    b_addr: int
    b_words: int
    bias_addr: int
    bias_words: int
    a_addr: int
    c_addr: int
    c_words: int


@dataclass
class _State:
    """What every inference of each test image delivers in the current state: nothing
    (``detected``: a job reads an uncorrectable weight word), or logits."""

    detected: bool
    corrected: bool
    right: np.ndarray  # per image: the predicted class is the label
    sdc: np.ndarray  # per image: logits differ from the fault-free run's
    changed: np.ndarray  # per image: the predicted class differs from the fault-free run's
    logits: np.ndarray | None


class NetworkSoak(_Soak):
    """A soak whose jobs are the inferences of a network with resident weights."""

    # --- setup ---------------------------------------------------------------------

    def _workload(self) -> None:
        from workload import reference
        from workload.format import load_workload

        spec = self.spec
        assert spec.network is not None
        net = self.net = load_workload(spec.network)
        self.jobs_per_image = reference.gemm_jobs(net, 1)
        self.inputs, self.labels = net.test_inputs, net.test_labels
        self.count = len(self.labels)
        self.golden, _ = reference.forward(net, self.inputs)
        self.golden_classes = reference.predictions(self.golden)
        n, bank = spec.build.n, spec.build.bank_words
        self.resident = self._place(n, bank)
        self.image = np.zeros((self.words, n), dtype=np.uint8)
        for job, res in zip(self.jobs_per_image, self.resident, strict=True):
            self.image[res.b_addr : res.b_addr + res.b_words] = pack_b(job.b, n)
            if job.bias is not None:
                self.image[res.bias_addr : res.bias_addr + res.bias_words] = pack_bias(job.bias, n)
        self.weight_words = np.concatenate([
            np.r_[r.b_addr : r.b_addr + r.b_words, r.bias_addr : r.bias_addr + r.bias_words]
            for r in self.resident
        ])  # fmt: skip
        self.weight_set = frozenset(self.weight_words.tolist())
        self.regs, cycles = self._registers(n, bank)
        self.job_cycles = cycles
        self.baseline = float(np.mean(self.golden_classes == self.labels))
        self.period = None
        if spec.duty_cycle:
            self.period = max(round(cycles / spec.duty_cycle), cycles + 1)
        self.inference = 0  # inferences due so far: the next one classifies image inference % count
        self.bins = [dict.fromkeys(("due", *SAMPLE_KEYS), 0) for _ in range(spec.samples)]
        self.state: _State | None = None
        self.damaged: frozenset[int] = frozenset()
        self.register_hit = False
        self.sdc_images = 0
        self._reload()

    def _place(self, n: int, bank: int) -> list[_Resident]:
        """B of every layer in bank 1 one after another, then the biases; in bank 0 the
        largest A at 0 and the largest C after it. ValueError if they do not fit."""
        from firmware_sim.jobs import gemm_spm_words

        name = self.spec.build.name
        sizes = [gemm_spm_words(n, j.m, j.k, j.n, j.bias is not None, j.out_int32)
                 for j in self.jobs_per_image]  # fmt: skip
        top_a = max(s[0] for s in sizes)
        c_at = top_a
        if top_a + max(s[3] for s in sizes) > bank:
            raise ValueError(f"soak: one image's activations of {self.net.name} do not fit "
                             f"bank 0 of build {name} ({bank} words)")  # fmt: skip
        b_at = bank
        bias_at = bank + sum(s[1] for s in sizes)
        if bias_at + sum(s[2] for s in sizes) > 2 * bank:
            raise ValueError(
                f"soak: the weights of {self.net.name} ({bias_at - bank} words of B and "
                f"{sum(s[2] for s in sizes)} of biases) do not fit bank 1 of build {name} "
                f"({bank} words): fly a build with a larger BANK_WORDS"
            )  # fmt: skip
        out = []
        for _, b_words, bias_words, c_words in sizes:
            out.append(_Resident(b_at, b_words, bias_at, bias_words, 0, c_at, c_words))
            b_at += b_words
            bias_at += bias_words
        return out

    def _registers(self, n: int, bank: int) -> tuple[list[dict[Reg, int]], int]:
        """Each layer's job registers as the flight software programs them, and the
        cycles of one clean inference (checked against the reference)."""
        from workload import reference

        chip = Accelerator(**self.spec.build.options())
        regs, cycles = [], 0
        x = self.inputs[:1]
        for layer, job, res in zip(self.net.layers, self.jobs_per_image, self.resident,
                                   strict=True):  # fmt: skip
            a = reference.layer_a(layer, x, 1)
            chip.load_job(a, job.b, job.bias, job.relu, job.shift, job.out_int32,
                          a_addr=res.a_addr, b_addr=res.b_addr, bias_addr=res.bias_addr,
                          c_addr=res.c_addr)  # fmt: skip
            regs.append({r: chip.read_reg(r) for r in JOB_REGS})
            chip.run()
            cycles += chip.read_reg(Reg.CYCLES)
            x = chip.unpack_c(chip.dump(res.c_addr, res.c_words), job.m, job.n, job.out_int32)
        if not np.array_equal(x, self.golden[:1]):
            raise RuntimeError("soak: the model's clean inference differs from the reference")
        return regs, cycles

    def _reload(self) -> None:
        """The weights and biases written again from the flight software's copy."""
        for r in self.resident:
            self.chip.load(r.b_addr, self.image[r.b_addr : r.b_addr + r.b_words])
            if r.bias_words:
                self.chip.load(r.bias_addr, self.image[r.bias_addr : r.bias_addr + r.bias_words])
        self._changed()

    def _changed(self) -> None:
        super()._changed()
        self.state = None

    def _land(self, arrival: float) -> None:
        before = self.lander.landed["flipflop"]
        super()._land(arrival)
        if self.lander.landed["flipflop"] != before:
            self.register_hit = True

    # --- the state -------------------------------------------------------------------

    def _evaluate(self) -> _State:
        """What every inference of each test image delivers in the current state (kept
        until something changes the chip, or the scrubber rewrites a weight word)."""
        damaged = frozenset(self.chip.spm.dirty.intersection(self.weight_set))
        if self.state is not None and damaged == self.damaged:
            return self.state
        self.damaged = damaged
        from workload import reference

        n = self.spec.build.n
        words = self.weight_words
        if self.chip.spm.ecc:
            data, status = self.chip.spm.decode_words(words.tolist())
            detected = bool(np.any(status == int(EccStatus.UNCORRECTABLE)))
            corrected = bool(np.any(status == int(EccStatus.CORRECTED)))
        else:
            data, detected, corrected = self.chip.spm.data[words], False, False
        none = np.zeros(self.count, dtype=bool)
        if detected:
            self.state = _State(True, corrected, none, none, none, None)
            return self.state
        seen = self.image.copy()
        seen[words] = np.asarray(data, dtype=np.uint8).reshape(-1, n)
        if np.array_equal(seen[words], self.image[words]):
            logits = self.golden
        else:
            b, bias = {}, {}
            for job, r in zip(self.jobs_per_image, self.resident, strict=True):
                b[job.layer] = unpack_b(seen[r.b_addr : r.b_addr + r.b_words], job.k, job.n)
                if job.bias is not None:
                    bias[job.layer] = unpack_bias(seen[r.bias_addr : r.bias_addr + r.bias_words],
                                                  job.n)  # fmt: skip

            def engine(job: reference.GemmJob, a: np.ndarray) -> np.ndarray:
                return reference.gemm_reference(a, b[job.layer], bias.get(job.layer),
                                                relu=job.relu, shift=job.shift,
                                                out_int32=job.out_int32)  # fmt: skip

            logits = reference.layer_outputs(self.net, self.inputs, engine)[-1]
        classes = reference.predictions(logits)
        sdc = np.any(logits != self.golden, axis=1)
        self.state = _State(False, corrected, classes == self.labels, sdc,
                            classes != self.golden_classes, logits)  # fmt: skip
        return self.state

    # --- inferences ------------------------------------------------------------------

    def _serve(self, next_job: int, due: int) -> None:
        """The inference due at ``next_job``, and maybe more of the ``due`` before the
        target. The first of a stretch runs for real (checked against the state's answer
        unless a register was hit); the others of the same state are counted."""
        self._idle_to(next_job)
        self._infer(check=not self.register_hit)
        if self.spec.run_every_job or self.down_until is not None or self.register_hit:
            return
        state = self._evaluate()
        if state.detected:
            return
        b = self._bin(next_job)
        later = -(-(self._bin_end(b) - next_job) // self.period) - 1
        count = min(due - 1, later, self._unscrubbed())
        if count > 0:
            self._stretch(next_job + self.period, int(count), state)

    def _unscrubbed(self) -> int | float:
        """How many of the coming inferences still read the weights as they are: until
        the scrubber reaches a weight word holding an error and rewrites it corrected."""
        steps = self._steps_per_gap()
        dirty = self.chip.spm.dirty.intersection(self.weight_set)
        if steps == 0 or not dirty:
            return math.inf
        ptr = self.chip.read_reg(Reg.SCRUB_PTR)
        reach = min((w - ptr) % self.words for w in dirty) + 1
        return math.ceil(reach / steps) - 1

    def _bin_end(self, b: int) -> int:
        """The first cycle after sample ``b``."""
        return -(-(b + 1) * self.end // self.spec.samples)

    def _bin(self, cycle: int) -> int:
        return min(cycle * self.spec.samples // self.end, self.spec.samples - 1)

    def _images(self, first: int, count: int, per_image: np.ndarray) -> int:
        """How many of inferences ``first .. first + count - 1`` have ``per_image`` set."""
        total = int(per_image.sum())
        whole, rest = divmod(count, self.count)
        start = first % self.count
        end = start + rest
        part = int(per_image[start:min(end, self.count)].sum())
        if end > self.count:
            part += int(per_image[: end - self.count].sum())
        return whole * total + part

    def _tally(self, start: int, count: int, state: _State | None) -> None:
        """Count ``count`` inferences from cycle ``start``, one period apart, into the
        samples; ``state`` says what each delivers (None: no answer)."""
        k = 0
        while k < count:
            b = self._bin(start + k * self.period)
            left = -(-(self._bin_end(b) - start - k * self.period) // self.period)
            n = min(count - k, max(1, left))
            row = self.bins[b]
            row["due"] += n
            if state is None:
                row["no_answer"] += n
            else:
                first = self.inference + k
                row["right"] += self._images(first, n, state.right)
                row["sdc"] += self._images(first, n, state.sdc)
                row["class_changed"] += self._images(first, n, state.changed)
            k += n

    def _missed(self, start: int, due: int) -> None:
        self.jobs["missed"] += due
        self._tally(start, due, None)
        self.inference += due

    def _stretch(self, start: int, count: int, state: _State) -> None:
        """``count`` inferences of an unchanging state from cycle ``start``, right after
        one that ran, counted by image; the scrub steps of the gap before each taken at
        once (a START restarts the scrubber's timer: each gap holds the same steps)."""
        sdc = self._images(self.inference, count, state.sdc)
        clean = Outcome.CORRECTED.value if state.corrected else Outcome.MASKED.value
        self.jobs[Outcome.SDC.value] += sdc
        self.jobs[clean] += count - sdc
        self._note_sdc(state, start)
        self._tally(start, count, state)
        self.inference += count
        steps = self._steps_per_gap()
        self.cyc = start + (count - 1) * self.period + self.job_cycles
        if steps:
            snap = self._scrub_position()
            self.chip.scrub_steps(count * steps)
            if self._found(snap, start - self.period, self.period / steps):
                self._changed()

    def _note_sdc(self, state: _State, cycle: int) -> None:
        """An SDC incident: a state change that made more test images silently wrong."""
        wrong = int(state.sdc.sum())
        if wrong > self.sdc_images:
            self.events["sdc"].append(cycle)
        self.sdc_images = wrong

    def _clear_activations(self) -> None:
        """The activation area as an inference leaves it: rewritten, no upset left."""
        top = max(r.c_addr + r.c_words for r in self.resident)
        self.chip.load(0, np.zeros((top, self.spec.build.n), dtype=np.uint8))

    def _infer(self, check: bool) -> None:
        """The next inference as real jobs on the model, counted and classified; with
        ``check``, its answer must be the one the state computed."""
        from workload import reference

        chip, backend = self.chip, self.backend
        state = None if self.register_hit else self._evaluate()
        self.register_hit = False
        image = self.inference % self.count
        start = self.cyc
        corr = chip.read_reg(Reg.ECC_CORR), chip.read_reg(Reg.TMR_MISMATCH)
        x = self.inputs[image : image + 1]
        seen = None
        for layer, job, res, regs in zip(self.net.layers, self.jobs_per_image, self.resident,
                                         self.regs, strict=True):  # fmt: skip
            chip.load(res.a_addr, pack_a(reference.layer_a(layer, x, 1), self.spec.build.n))
            resp = [backend.write(int(r), v) for r, v in regs.items()]
            resp.append(backend.write(int(Reg.CTRL), int(Ctrl.START)))
            self.simulated += 1
            if chip.hung:
                seen = Observation(None, hung=True)
                break
            status = chip.read_reg(Reg.STATUS)
            if status & Status.ERROR:
                seen = Observation(None, f"{job.layer} ended with ERR_CODE "
                                         f"{status >> ERR_CODE_SHIFT}")  # fmt: skip
                break
            if any(r != Resp.OKAY for r in resp) or not status & Status.DONE:
                seen = Observation(None, f"{job.layer}: the chip refused a write or never "
                                         "said DONE")  # fmt: skip
                break
            x, error = self._read_c(res, job)
            if error:
                seen = Observation(None, error)
                break
        self.cyc = start + self.job_cycles
        if seen is None:
            moved = (chip.read_reg(Reg.ECC_CORR) - corr[0] & MASK32,
                     chip.read_reg(Reg.TMR_MISMATCH) - corr[1] & MASK32)  # fmt: skip
            seen = Observation(x, "", False, dict(zip(MITIGATION_COUNTERS, moved, strict=True)))
        golden = self.golden[image : image + 1]
        verdict = classify(seen, golden, classes=self.golden_classes[image : image + 1])
        outcome = verdict.outcome
        if check and state is not None:
            self._check(state, image, outcome, seen)
        self.jobs[outcome.value] += 1
        row = self.bins[self._bin(start)]
        row["due"] += 1
        if seen.result is None:
            row["no_answer"] += 1
        else:
            predicted = int(np.argmax(seen.result[0]))
            row["right"] += predicted == int(self.labels[image])
            row["sdc"] += outcome is Outcome.SDC
            row["class_changed"] += bool(verdict.changed)
        self.inference += 1
        if outcome is Outcome.HANG:
            self.events["hang"].append(self.cyc)
            self._go_down(self.spec.reset_s)
            self._changed()
        elif outcome is Outcome.DETECTED:
            self.events["detected"].append(self.cyc)
            self._reload()  # the flight software writes the weights again
        elif state is not None:
            self._note_sdc(state, start)
        self._clear_activations()

    def _read_c(self, res: _Resident, job) -> tuple[np.ndarray | None, str]:
        """C read back as the flight software reads it: words holding an error through
        the decoder (corrected and counted, or uncorrectable)."""
        chip = self.chip
        words = chip.dump(res.c_addr, res.c_words)
        for addr in chip.spm.dirty_in(res.c_addr, res.c_addr + res.c_words):
            data, status = chip.read_word(addr)
            if status is EccStatus.UNCORRECTABLE:
                return None, f"{job.layer}: result word {addr - res.c_addr} uncorrectable"
            words[addr - res.c_addr] = np.frombuffer(data.to_bytes(chip.n, "little"), np.uint8)
        return chip.unpack_c(words, job.m, job.n, job.out_int32), ""

    def _check(self, state: _State, image: int, outcome: Outcome, seen: Observation) -> None:
        """The real inference delivered what the state said, or the soak stops."""
        if state.detected:
            ok = outcome is Outcome.DETECTED
        else:
            ok = seen.result is not None and np.array_equal(seen.result[0], state.logits[image])
        if not ok:
            raise RuntimeError(
                f"soak: inference of test image {image} on the model ended {outcome.value}, "
                f"unlike the state's computed answer ({'detected' if state.detected else 'logits'})"
            )

    # --- the result ------------------------------------------------------------------

    def samples(self) -> list[dict]:
        """Per sample: its end day, the inferences due and the shares of ``SAMPLE_KEYS``."""
        out = []
        for b, row in enumerate(self.bins):
            day = (b + 1) * self.spec.days / self.spec.samples
            due = row["due"]
            shares = {k: (row[k] / due if due else None) for k in SAMPLE_KEYS}
            out.append({"day": day, "inferences": due, **{f"{k}_share": v
                                                           for k, v in shares.items()}})
        return out

    def result(self, wall_s: float):
        out = super().result(wall_s)
        out.network = {
            "name": self.net.name, "test_images": self.count,
            "baseline_accuracy": self.baseline, "samples": self.samples(),
            "accuracy": _share(self.bins, "right"), "sdc_share": _share(self.bins, "sdc"),
            "class_changed_share": _share(self.bins, "class_changed"),
            "no_answer_share": _share(self.bins, "no_answer"),
            "accuracy_last_tenth": _share(self.bins[-max(1, len(self.bins) // 10) :], "right"),
        }  # fmt: skip
        return out


def _share(bins: list[dict], key: str) -> float | None:
    due = sum(b["due"] for b in bins)
    return sum(b[key] for b in bins) / due if due else None

