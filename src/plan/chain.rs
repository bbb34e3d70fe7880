//! Bitmap chain validity (qemuBlockBitmapChainIsValid, SPEC 1.4), with the reason when
//! a chain is not valid.

use crate::model::domain::Layer;
use crate::model::nodes::{Bitmap, NodeData};

/// The state of the chain of bitmaps named `B` from the top of a backing chain down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainState {
    /// Present on the top layer and every layer below it down to where it stops, each
    /// copy recording, persistent and consistent.
    Valid,
    /// Not on the top layer.
    MissingTop,
    /// Missing on layer `missing` (index into the chain) but present further down.
    Gap {
        /// The layer without the bitmap.
        missing: usize,
    },
    /// Inconsistent on layer `layer` (after an unclean shutdown).
    Inconsistent {
        /// The layer.
        layer: usize,
    },
    /// Not recording on layer `layer`.
    NotRecording {
        /// The layer.
        layer: usize,
    },
    /// Not persistent on layer `layer`.
    NotPersistent {
        /// The layer.
        layer: usize,
    },
}

impl ChainState {
    /// Whether libvirt would accept the chain.
    pub fn is_valid(self) -> bool {
        self == ChainState::Valid
    }

    /// The layer (0 = top) at fault, if any.
    pub fn layer(self) -> Option<usize> {
        match self {
            ChainState::Valid => None,
            ChainState::MissingTop => Some(0),
            ChainState::Gap { missing } => Some(missing),
            ChainState::Inconsistent { layer }
            | ChainState::NotRecording { layer }
            | ChainState::NotPersistent { layer } => Some(layer),
        }
    }
}

/// Walks `chain` (top first) for bitmap `name`. The first problem found from the top
/// down is reported.
pub fn chain_state<L: Layer>(chain: &[L], name: &str, nodes: &NodeData) -> ChainState {
    layers_state(chain.iter().map(|l| nodes.bitmap(l.node(), name)))
}

/// [`chain_state`] over the bitmap found on each layer, top first (`None`: not there).
pub(crate) fn layers_state<'a>(layers: impl IntoIterator<Item = Option<&'a Bitmap>>) -> ChainState {
    let mut first_missing = None;
    let mut empty = true;
    for (i, found) in layers.into_iter().enumerate() {
        empty = false;
        match found {
            None => {
                if i == 0 {
                    return ChainState::MissingTop;
                }
                first_missing.get_or_insert(i);
            }
            Some(b) => {
                if let Some(missing) = first_missing {
                    return ChainState::Gap { missing };
                }
                if b.inconsistent {
                    return ChainState::Inconsistent { layer: i };
                }
                if !b.recording {
                    return ChainState::NotRecording { layer: i };
                }
                if !b.persistent {
                    return ChainState::NotPersistent { layer: i };
                }
            }
        }
    }
    if empty {
        ChainState::MissingTop
    } else {
        ChainState::Valid
    }
}

/// qemuBlockBitmapChainIsValid.
pub fn bitmap_chain_is_valid<L: Layer>(chain: &[L], name: &str, nodes: &NodeData) -> bool {
    chain_state(chain, name, nodes).is_valid()
}
