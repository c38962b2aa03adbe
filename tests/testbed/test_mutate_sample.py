"""A fixed sample of the RTL mutants ``make mutate`` lists, each of which the cocotb tests
must kill, through the same path (Yosys netlist of the mutated module, Icarus, the
subset): a change to the tests or the RTL that lets one live fails here, without the
whole mutation run. The unmutated netlists of their modules must pass first."""

from __future__ import annotations

import pytest

from testbed import mutate

#: Mutants of two modules (one unmutated check each) that the first tests of the subset
#: kill, so the sample takes seconds each.
SAMPLE = (
    "scc_regs|$eq$hdl/rtl/scc_regs.v:110|A[4]|const0",
    "scc_regs|u_dim_k|q_o[8]|const1|k_o",
    "scc_regs|$procdff|Q[15]|inv|macs_q",
    "scc_axil_slave|$procdff|Q[11]|const1|addr_o",
    "scc_axil_slave|$logic_and$hdl/rtl/scc_axil_slave.v:67|Y[0]|inv|s_axil_awready",
    "scc_axil_slave|$procdff|Q[5]|const0|s_axil_rdata",
)


@pytest.mark.rtl
def test_a_sample_of_mutants_is_killed_and_the_unmutated_netlists_pass() -> None:
    design = mutate.elaborate()
    listed = {m.identity: m for m in mutate.list_mutations(design, mutate.COUNT,
                                                           mutate.LIST_SEED)}  # fmt: skip
    missing = [identity for identity in SAMPLE if identity not in listed]
    assert not missing, (f"mutate -list no longer lists {missing}: the RTL changed; pick "
                         "killed mutants from results/mutation.json for SAMPLE")  # fmt: skip
    mutations = [listed[identity] for identity in SAMPLE]
    blind = {m.module: tuple(mutate.NETLIST_BLIND.get(m.base, {})) for m in mutations}
    for module in sorted(blind):
        record = mutate.run_one(design, module, None, mutate.TIMEOUT, blind[module])
        assert record["outcome"] == mutate.SURVIVED, (
            f"the unmutated netlist of {mutate.base_module(module)} fails the subset: "
            f"{record['failed'] or record['detail']} (log {record['folder']}/sim.log)")
    for mutation in mutations:
        record = mutate.run_one(design, mutation.module, mutation, mutate.TIMEOUT,
                                blind[mutation.module])  # fmt: skip
        assert record["outcome"] in (mutate.KILLED, mutate.TIMEOUT_KILLED), (
            f"{mutation.line}: mutant {mutation.identity} {record['outcome']} "
            f"(log {record['folder']}/sim.log)")
