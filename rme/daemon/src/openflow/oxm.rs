// SPDX-License-Identifier: GPL-2.0

//! OXM matches (`ofp_match` of type `OFPMT_OXM`) and their fields.
//!
//! The decoder checks what OpenFlow 1.3 §7.2.3 asks of every switch:
//! lengths (`OFPBMC_BAD_LEN`), masks only on maskable fields
//! (`OFPBMC_BAD_MASK`), no value bit outside its mask
//! (`OFPBMC_BAD_WILDCARDS`), no field twice (`OFPBMC_DUP_FIELD`) and each
//! field's prerequisites (`OFPBMC_BAD_PREREQ`). Fields of other classes
//! and basic fields this switch does not know are kept as
//! [`Field::Other`]; the mapping onto the NIC refuses them with
//! `OFPBMC_BAD_FIELD`.

use super::buf::{OfError, Reader, Writer};
use super::consts::{err, oxm};

/// A field value and, for a masked match, its mask (1 bits are matched).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Masked<T> {
    pub value: T,
    pub mask: Option<T>,
}

impl<T> Masked<T> {
    /// An exact match on `value`.
    pub const fn exact(value: T) -> Self {
        Self { value, mask: None }
    }
}

/// One OXM field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    InPort(u32),
    EthDst(Masked<[u8; 6]>),
    EthSrc(Masked<[u8; 6]>),
    EthType(u16),
    /// `VLAN_VID` with [`oxm::VID_PRESENT`] as OpenFlow encodes it.
    VlanVid(Masked<u16>),
    IpProto(u8),
    Ipv4Src(Masked<[u8; 4]>),
    Ipv4Dst(Masked<[u8; 4]>),
    TcpSrc(u16),
    TcpDst(u16),
    UdpSrc(u16),
    UdpDst(u16),
    TunnelId(Masked<u64>),
    /// A field this switch does not interpret.
    Other {
        class: u16,
        field: u8,
        has_mask: bool,
        body: Vec<u8>,
    },
}

/// Bytes of the OXM header.
const OXM_HEADER_LEN: usize = 4;

fn bad(code: u16) -> OfError {
    OfError::new(err::BAD_MATCH, code)
}

/// Reads a value and, with `has_mask`, a mask of `N` bytes each; checks
/// that no value bit is outside the mask.
fn masked<const N: usize>(r: &mut Reader<'_>, has_mask: bool) -> Result<Masked<[u8; N]>, OfError> {
    let value: [u8; N] = r.array()?;
    if !has_mask {
        return Ok(Masked::exact(value));
    }
    let mask: [u8; N] = r.array()?;
    if value.iter().zip(&mask).any(|(v, m)| v & !m != 0) {
        return Err(bad(err::matching::BAD_WILDCARDS));
    }
    Ok(Masked {
        value,
        mask: Some(mask),
    })
}

fn be16(m: Masked<[u8; 2]>) -> Masked<u16> {
    Masked {
        value: u16::from_be_bytes(m.value),
        mask: m.mask.map(u16::from_be_bytes),
    }
}

fn be64(m: Masked<[u8; 8]>) -> Masked<u64> {
    Masked {
        value: u64::from_be_bytes(m.value),
        mask: m.mask.map(u64::from_be_bytes),
    }
}

impl Field {
    /// The (class, field) pair that identifies the field in a match.
    pub fn id(&self) -> (u16, u8) {
        let basic = |f| (oxm::CLASS_OPENFLOW_BASIC, f);
        match self {
            Field::InPort(_) => basic(oxm::IN_PORT),
            Field::EthDst(_) => basic(oxm::ETH_DST),
            Field::EthSrc(_) => basic(oxm::ETH_SRC),
            Field::EthType(_) => basic(oxm::ETH_TYPE),
            Field::VlanVid(_) => basic(oxm::VLAN_VID),
            Field::IpProto(_) => basic(oxm::IP_PROTO),
            Field::Ipv4Src(_) => basic(oxm::IPV4_SRC),
            Field::Ipv4Dst(_) => basic(oxm::IPV4_DST),
            Field::TcpSrc(_) => basic(oxm::TCP_SRC),
            Field::TcpDst(_) => basic(oxm::TCP_DST),
            Field::UdpSrc(_) => basic(oxm::UDP_SRC),
            Field::UdpDst(_) => basic(oxm::UDP_DST),
            Field::TunnelId(_) => basic(oxm::TUNNEL_ID),
            Field::Other { class, field, .. } => (*class, *field),
        }
    }

    /// Decodes one field at the start of `r`.
    pub fn decode(r: &mut Reader<'_>) -> Result<Field, OfError> {
        let class = r.u16()?;
        let field_mask = r.u8()?;
        let len = usize::from(r.u8()?);
        let (field, has_mask) = (field_mask >> 1, field_mask & 1 != 0);
        let mut body = r.sub(len, bad(err::matching::BAD_LEN))?;
        if class != oxm::CLASS_OPENFLOW_BASIC {
            return Ok(Field::Other {
                class,
                field,
                has_mask,
                body: body.rest().to_vec(),
            });
        }
        // (value length, maskable) of the fields this switch knows.
        let (size, maskable) = match field {
            oxm::IN_PORT => (4, false),
            oxm::ETH_DST | oxm::ETH_SRC => (6, true),
            oxm::ETH_TYPE => (2, false),
            oxm::VLAN_VID => (2, true),
            oxm::IP_PROTO => (1, false),
            oxm::IPV4_SRC | oxm::IPV4_DST => (4, true),
            oxm::TCP_SRC | oxm::TCP_DST | oxm::UDP_SRC | oxm::UDP_DST => (2, false),
            oxm::TUNNEL_ID => (8, true),
            _ => {
                return Ok(Field::Other {
                    class,
                    field,
                    has_mask,
                    body: body.rest().to_vec(),
                })
            }
        };
        if has_mask && !maskable {
            return Err(bad(err::matching::BAD_MASK));
        }
        if len != size * (1 + usize::from(has_mask)) {
            return Err(bad(err::matching::BAD_LEN));
        }
        let b = &mut body;
        Ok(match field {
            oxm::IN_PORT => Field::InPort(b.u32()?),
            oxm::ETH_DST => Field::EthDst(masked(b, has_mask)?),
            oxm::ETH_SRC => Field::EthSrc(masked(b, has_mask)?),
            oxm::ETH_TYPE => Field::EthType(b.u16()?),
            oxm::VLAN_VID => {
                let vid = be16(masked(b, has_mask)?);
                // 13 bits: the 12-bit VID and OFPVID_PRESENT.
                if vid.value & !0x1fff != 0 {
                    return Err(bad(err::matching::BAD_VALUE));
                }
                Field::VlanVid(vid)
            }
            oxm::IP_PROTO => Field::IpProto(b.u8()?),
            oxm::IPV4_SRC => Field::Ipv4Src(masked(b, has_mask)?),
            oxm::IPV4_DST => Field::Ipv4Dst(masked(b, has_mask)?),
            oxm::TCP_SRC => Field::TcpSrc(b.u16()?),
            oxm::TCP_DST => Field::TcpDst(b.u16()?),
            oxm::UDP_SRC => Field::UdpSrc(b.u16()?),
            oxm::UDP_DST => Field::UdpDst(b.u16()?),
            _ => Field::TunnelId(be64(masked(b, has_mask)?)),
        })
    }

    /// Appends the field's OXM TLV.
    pub fn encode(&self, w: &mut Writer) {
        fn tlv(w: &mut Writer, field: u8, value: &[u8], mask: Option<&[u8]>) {
            let len = value.len() + mask.map_or(0, <[u8]>::len);
            w.u16(oxm::CLASS_OPENFLOW_BASIC)
                .u8(field << 1 | u8::from(mask.is_some()))
                .u8(len as u8)
                .bytes(value);
            if let Some(m) = mask {
                w.bytes(m);
            }
        }
        match self {
            Field::InPort(p) => tlv(w, oxm::IN_PORT, &p.to_be_bytes(), None),
            Field::EthDst(m) => tlv(w, oxm::ETH_DST, &m.value, m.mask.as_ref().map(|x| &x[..])),
            Field::EthSrc(m) => tlv(w, oxm::ETH_SRC, &m.value, m.mask.as_ref().map(|x| &x[..])),
            Field::EthType(t) => tlv(w, oxm::ETH_TYPE, &t.to_be_bytes(), None),
            Field::VlanVid(m) => tlv(
                w,
                oxm::VLAN_VID,
                &m.value.to_be_bytes(),
                m.mask.map(u16::to_be_bytes).as_ref().map(|x| &x[..]),
            ),
            Field::IpProto(p) => tlv(w, oxm::IP_PROTO, &[*p], None),
            Field::Ipv4Src(m) => tlv(w, oxm::IPV4_SRC, &m.value, m.mask.as_ref().map(|x| &x[..])),
            Field::Ipv4Dst(m) => tlv(w, oxm::IPV4_DST, &m.value, m.mask.as_ref().map(|x| &x[..])),
            Field::TcpSrc(p) => tlv(w, oxm::TCP_SRC, &p.to_be_bytes(), None),
            Field::TcpDst(p) => tlv(w, oxm::TCP_DST, &p.to_be_bytes(), None),
            Field::UdpSrc(p) => tlv(w, oxm::UDP_SRC, &p.to_be_bytes(), None),
            Field::UdpDst(p) => tlv(w, oxm::UDP_DST, &p.to_be_bytes(), None),
            Field::TunnelId(m) => tlv(
                w,
                oxm::TUNNEL_ID,
                &m.value.to_be_bytes(),
                m.mask.map(u64::to_be_bytes).as_ref().map(|x| &x[..]),
            ),
            Field::Other {
                class,
                field,
                has_mask,
                body,
            } => {
                w.u16(*class)
                    .u8(field << 1 | u8::from(*has_mask))
                    .u8(body.len() as u8)
                    .bytes(body);
            }
        }
    }
}

/// An OXM match: the fields, in the order received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Match {
    pub fields: Vec<Field>,
}

impl Match {
    /// A match of `fields`.
    pub fn new(fields: Vec<Field>) -> Self {
        Self { fields }
    }

    /// The field of `class` and `field`, if matched.
    pub fn get(&self, class: u16, field: u8) -> Option<&Field> {
        self.fields.iter().find(|f| f.id() == (class, field))
    }

    fn eth_type(&self) -> Option<u16> {
        self.fields.iter().find_map(|f| match f {
            Field::EthType(t) => Some(*t),
            _ => None,
        })
    }

    fn ip_proto(&self) -> Option<u8> {
        self.fields.iter().find_map(|f| match f {
            Field::IpProto(p) => Some(*p),
            _ => None,
        })
    }

    /// Checks duplicates and prerequisites (OpenFlow 1.3 table 12).
    fn validate(&self) -> Result<(), OfError> {
        for (i, f) in self.fields.iter().enumerate() {
            if self.fields[..i].iter().any(|g| g.id() == f.id()) {
                return Err(bad(err::matching::DUP_FIELD));
            }
            let ok = match f {
                Field::IpProto(_) => matches!(self.eth_type(), Some(0x0800 | 0x86dd)),
                Field::Ipv4Src(_) | Field::Ipv4Dst(_) => self.eth_type() == Some(0x0800),
                Field::TcpSrc(_) | Field::TcpDst(_) => self.ip_proto() == Some(6),
                Field::UdpSrc(_) | Field::UdpDst(_) => self.ip_proto() == Some(17),
                _ => true,
            };
            if !ok {
                return Err(bad(err::matching::BAD_PREREQ));
            }
        }
        Ok(())
    }

    /// Decodes an `ofp_match` (header, fields, padding to 8 bytes) at the
    /// start of `r`.
    pub fn decode(r: &mut Reader<'_>) -> Result<Match, OfError> {
        let kind = r.u16()?;
        let len = usize::from(r.u16()?);
        if kind != oxm::MATCH_TYPE_OXM {
            return Err(bad(err::matching::BAD_TYPE));
        }
        if len < 4 {
            return Err(bad(err::matching::BAD_LEN));
        }
        let mut body = r.sub(len - 4, bad(err::matching::BAD_LEN))?;
        r.skip(len.next_multiple_of(8) - len)?;
        let mut fields = Vec::new();
        while !body.is_empty() {
            if body.remaining() < OXM_HEADER_LEN {
                return Err(bad(err::matching::BAD_LEN));
            }
            fields.push(Field::decode(&mut body)?);
        }
        let m = Match { fields };
        m.validate()?;
        Ok(m)
    }

    /// Appends the `ofp_match`, padded to 8 bytes.
    pub fn encode(&self, w: &mut Writer) {
        let start = w.len();
        w.u16(oxm::MATCH_TYPE_OXM).u16(0);
        for f in &self.fields {
            f.encode(w);
        }
        w.patch_len(start + 2, start);
        w.pad8();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: &Match) -> Result<Match, OfError> {
        let mut w = Writer::new();
        m.encode(&mut w);
        assert_eq!(w.len() % 8, 0);
        let mut r = Reader::new(&w.buf, OfError::bad_len());
        let back = Match::decode(&mut r)?;
        assert!(r.is_empty());
        Ok(back)
    }

    #[test]
    fn fields_round_trip() {
        let m = Match::new(vec![
            Field::InPort(1),
            Field::EthType(0x0800),
            Field::IpProto(17),
            Field::Ipv4Dst(Masked {
                value: [10, 0, 0, 0],
                mask: Some([255, 255, 255, 0]),
            }),
            Field::UdpDst(5201),
            Field::EthSrc(Masked::exact([2, 0, 0, 0, 0, 1])),
            Field::VlanVid(Masked::exact(oxm::VID_PRESENT | 100)),
            Field::TunnelId(Masked::exact(5001)),
        ]);
        assert_eq!(round_trip(&m), Ok(m));
        assert_eq!(round_trip(&Match::default()), Ok(Match::default()));
    }

    #[test]
    fn the_empty_match_is_eight_bytes() {
        let mut w = Writer::new();
        Match::default().encode(&mut w);
        assert_eq!(w.buf, [0, 1, 0, 4, 0, 0, 0, 0]);
    }

    #[test]
    fn prerequisites_duplicates_and_wildcards() {
        let no_eth_type = Match::new(vec![Field::IpProto(6)]);
        assert_eq!(
            round_trip(&no_eth_type),
            Err(bad(err::matching::BAD_PREREQ))
        );
        let udp_on_tcp = Match::new(vec![
            Field::EthType(0x0800),
            Field::IpProto(6),
            Field::UdpDst(53),
        ]);
        assert_eq!(round_trip(&udp_on_tcp), Err(bad(err::matching::BAD_PREREQ)));
        let twice = Match::new(vec![Field::InPort(1), Field::InPort(2)]);
        assert_eq!(round_trip(&twice), Err(bad(err::matching::DUP_FIELD)));
        let outside_mask = Match::new(vec![
            Field::EthType(0x0800),
            Field::Ipv4Src(Masked {
                value: [10, 0, 0, 1],
                mask: Some([255, 255, 255, 0]),
            }),
        ]);
        assert_eq!(
            round_trip(&outside_mask),
            Err(bad(err::matching::BAD_WILDCARDS))
        );
    }

    #[test]
    fn bad_lengths_and_masks() {
        // ETH_TYPE with 3 bytes.
        let raw = [
            0,
            1,
            0,
            11,
            0x80,
            0,
            oxm::ETH_TYPE << 1,
            3,
            8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        let mut r = Reader::new(&raw, OfError::bad_len());
        assert_eq!(Match::decode(&mut r), Err(bad(err::matching::BAD_LEN)));
        // ETH_TYPE with a mask.
        let raw = [
            0,
            1,
            0,
            12,
            0x80,
            0,
            oxm::ETH_TYPE << 1 | 1,
            4,
            8,
            0,
            255,
            255,
            0,
            0,
            0,
            0,
        ];
        let mut r = Reader::new(&raw, OfError::bad_len());
        assert_eq!(Match::decode(&mut r), Err(bad(err::matching::BAD_MASK)));
        // A match of another type.
        let raw = [0, 0, 0, 4, 0, 0, 0, 0];
        let mut r = Reader::new(&raw, OfError::bad_len());
        assert_eq!(Match::decode(&mut r), Err(bad(err::matching::BAD_TYPE)));
        // A field running past the match.
        let raw = [0, 1, 0, 8, 0x80, 0, 0, 8, 0, 0, 0, 0];
        let mut r = Reader::new(&raw, OfError::bad_len());
        assert_eq!(Match::decode(&mut r), Err(bad(err::matching::BAD_LEN)));
    }

    #[test]
    fn unknown_fields_are_kept_for_the_mapping_to_refuse() {
        let m = Match::new(vec![Field::Other {
            class: oxm::CLASS_OPENFLOW_BASIC,
            field: 20,
            has_mask: false,
            body: vec![3],
        }]);
        assert_eq!(round_trip(&m), Ok(m));
    }
}
