//! A disk's `<driver>` options that reach QEMU's format nodes: what libvirt puts in a
//! `blockdev-reopen` of one of the disk's images.
//!
//! libvirt hands `cache` and `discard` to every image of the chain and
//! `detect_zeroes` to the top image only (qemuDomainPrepareDiskSourceData).

use crate::error::{Error, ErrorDomain, Result};

macro_rules! driver_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub enum $name {
            /// Not set: QEMU's default, and nothing in the reopen.
            #[default]
            Default,
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// The value named `text` in the domain XML (`default` is not accepted;
            /// see [`DiskDriver::from_attrs`] for where libvirt takes it).
            pub fn from_name(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// The XML name; None for [`Self::Default`].
            pub fn name(self) -> Option<&'static str> {
                match self {
                    Self::Default => None,
                    $(Self::$variant => Some($text),)*
                }
            }
        }
    };
}

driver_enum! {
    /// `<driver cache=...>`.
    CacheMode {
        /// `none`: O_DIRECT, flushes honoured.
        None = "none",
        /// `writethrough`.
        Writethrough = "writethrough",
        /// `writeback`.
        Writeback = "writeback",
        /// `directsync`: O_DIRECT.
        Directsync = "directsync",
        /// `unsafe`: flushes ignored.
        Unsafe = "unsafe",
    }
}

driver_enum! {
    /// `<driver discard=...>`.
    Discard {
        /// `unmap`: discards are passed to the image.
        Unmap = "unmap",
        /// `ignore`.
        Ignore = "ignore",
    }
}

driver_enum! {
    /// `<driver detect_zeroes=...>`.
    DetectZeroes {
        /// `off`.
        Off = "off",
        /// `on`.
        On = "on",
        /// `unmap`: zero writes become discards (only with `discard='unmap'`).
        Unmap = "unmap",
    }
}

impl CacheMode {
    /// The `cache` object of a format node (`direct`, `no-flush`), as libvirt derives
    /// it from the mode (qemuDomainDiskCachemodeFlags); None for the default mode.
    pub fn flags(self) -> Option<(bool, bool)> {
        match self {
            CacheMode::Default => None,
            CacheMode::None | CacheMode::Directsync => Some((true, false)),
            CacheMode::Writethrough | CacheMode::Writeback => Some((false, false)),
            CacheMode::Unsafe => Some((false, true)),
        }
    }
}

/// The options (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskDriver {
    /// The cache mode, for every image of the chain.
    pub cache: CacheMode,
    /// Discard handling, for every image of the chain.
    pub discard: Discard,
    /// Zero-write detection, for the top image only.
    pub detect_zeroes: DetectZeroes,
}

impl DiskDriver {
    /// From the attribute values (None: absent). An unknown value is libvirt's
    /// VIR_ERR_XML_ERROR "Invalid value for attribute '%s' in element 'driver': '%s'.";
    /// as libvirt's parser, `cache` takes `default` and the other two do not.
    pub fn from_attrs(
        cache: Option<&str>,
        discard: Option<&str>,
        detect_zeroes: Option<&str>,
    ) -> Result<DiskDriver> {
        fn one<T: Copy + Default>(
            attr: &str,
            value: Option<&str>,
            parse: fn(&str) -> Option<T>,
        ) -> Result<T> {
            match value {
                None => Ok(T::default()),
                Some(v) => parse(v).ok_or_else(|| {
                    Error::xml(
                        ErrorDomain::Domain,
                        format_args!(
                            "Invalid value for attribute '{attr}' in element 'driver': '{v}'."
                        ),
                    )
                }),
            }
        }
        Ok(DiskDriver {
            cache: one("cache", cache, |v| match v {
                "default" => Some(CacheMode::Default),
                v => CacheMode::from_name(v),
            })?,
            discard: one("discard", discard, Discard::from_name)?,
            detect_zeroes: one("detect_zeroes", detect_zeroes, DetectZeroes::from_name)?,
        })
    }

    /// The `detect-zeroes` value QEMU gets (virDomainDiskGetDetectZeroesMode): `unmap`
    /// without `discard='unmap'` is sent as `on`.
    pub fn effective_detect_zeroes(&self) -> DetectZeroes {
        if self.detect_zeroes == DetectZeroes::Unmap && self.discard != Discard::Unmap {
            DetectZeroes::On
        } else {
            self.detect_zeroes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_refusals() {
        let d = DiskDriver::from_attrs(Some("none"), Some("unmap"), Some("unmap")).unwrap();
        assert_eq!(d.cache.flags(), Some((true, false)));
        assert_eq!(d.effective_detect_zeroes(), DetectZeroes::Unmap);
        let d = DiskDriver::from_attrs(Some("unsafe"), None, Some("unmap")).unwrap();
        assert_eq!(d.cache.flags(), Some((false, true)));
        assert_eq!(d.effective_detect_zeroes(), DetectZeroes::On);
        assert_eq!(
            DiskDriver::from_attrs(None, None, None).unwrap(),
            DiskDriver::default()
        );
        assert_eq!(
            DiskDriver::from_attrs(Some("default"), None, None).unwrap(),
            DiskDriver::default()
        );
        let e = DiskDriver::from_attrs(None, Some("default"), None).unwrap_err();
        assert_eq!(
            e.detail(),
            "Invalid value for attribute 'discard' in element 'driver': 'default'."
        );
        assert!(DiskDriver::from_attrs(Some("fast"), None, None).is_err());
        assert!(DiskDriver::from_attrs(None, Some("trim"), None).is_err());
        assert!(DiskDriver::from_attrs(None, None, Some("yes")).is_err());
    }
}
