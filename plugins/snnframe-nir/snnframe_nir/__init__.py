"""NIR for snnframe: ``snnframe export-nir``, the ``nir`` architecture and NIR-exact neurons.

The hook module stays import-light (no torch, no nir): components are lazy references and the
command imports its modules when it runs, so ``snnframe --help`` and ``list-plugins`` stay fast.
"""

import snnframe

__version__ = "0.1.0"


@snnframe.hookimpl
def register_architectures(register):
    register("nir", "snnframe_nir.importer:nir_architecture")


@snnframe.hookimpl
def register_neurons(register):
    # snnframe's synaptic, rleaky and rsynaptic with NIR's reset (to v_reset within the step)
    register("nir_synaptic", "snnframe_nir.neurons:nir_synaptic")
    register("nir_rleaky", "snnframe_nir.neurons:nir_rleaky")
    register("nir_rsynaptic", "snnframe_nir.neurons:nir_rsynaptic")


@snnframe.hookimpl
def register_commands(cli):
    from snnframe_nir.cli import add_commands  # click only: cheap

    add_commands(cli)
