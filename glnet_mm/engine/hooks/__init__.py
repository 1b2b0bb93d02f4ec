from .rng_state_hook import RNGStateHook, get_rng_states, set_rng_states
from .slot_visualization_hook import SlotVisualizationHook

__all__ = ['RNGStateHook', 'SlotVisualizationHook', 'get_rng_states',
           'set_rng_states']
