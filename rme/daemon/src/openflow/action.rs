// SPDX-License-Identifier: GPL-2.0

//! Actions (`ofp_action_*`) and instructions (`ofp_instruction_*`).
//!
//! Decoding checks structure only (type, length, padding); whether the
//! NIC can do an action is the mapping's question. Unknown types are kept
//! so the mapping answers them with `OFPBAC_BAD_TYPE` or
//! `OFPBIC_UNKNOWN_INST`, as a controller expects.

use super::buf::{OfError, Reader, Writer};
use super::consts::{act, err, inst};
use super::oxm::Field;

fn bad_action(code: u16) -> OfError {
    OfError::new(err::BAD_ACTION, code)
}

fn bad_inst(code: u16) -> OfError {
    OfError::new(err::BAD_INSTRUCTION, code)
}

/// One action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send to `port`; `max_len` bytes to the controller.
    Output {
        port: u32,
        max_len: u16,
    },
    /// Set a header field (here: `tunnel_id` for a VXLAN VNI).
    SetField(Field),
    PushVlan(u16),
    PopVlan,
    SetQueue(u32),
    Group(u32),
    DecNwTtl,
    /// An action type this switch does not interpret.
    Other {
        kind: u16,
        body: Vec<u8>,
    },
}

impl Action {
    fn decode(r: &mut Reader<'_>) -> Result<Action, OfError> {
        let kind = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < 8 || len % 8 != 0 {
            return Err(bad_action(err::action::BAD_LEN));
        }
        let mut b = r.sub(len - 4, bad_action(err::action::BAD_LEN))?;
        let fixed = |b: &Reader<'_>, body: usize| {
            if b.remaining() == body {
                Ok(())
            } else {
                Err(bad_action(err::action::BAD_LEN))
            }
        };
        Ok(match kind {
            act::OUTPUT => {
                fixed(&b, 12)?;
                let port = b.u32()?;
                let max_len = b.u16()?;
                Action::Output { port, max_len }
            }
            act::SET_FIELD => {
                let mut field_reader = Reader::new(b.rest(), bad_action(err::action::BAD_SET_LEN));
                let field = Field::decode(&mut field_reader).map_err(|e| {
                    if e.kind == err::BAD_MATCH {
                        bad_action(err::action::BAD_SET_LEN)
                    } else {
                        e
                    }
                })?;
                // Only padding may follow the field, and a set-field
                // cannot carry a mask.
                if field_reader.remaining() >= 8 || field_reader.rest().iter().any(|&x| x != 0) {
                    return Err(bad_action(err::action::BAD_SET_LEN));
                }
                if matches!(field, Field::Other { has_mask: true, .. }) {
                    return Err(bad_action(err::action::BAD_SET_ARGUMENT));
                }
                Action::SetField(field)
            }
            act::PUSH_VLAN => {
                fixed(&b, 4)?;
                Action::PushVlan(b.u16()?)
            }
            act::POP_VLAN => {
                fixed(&b, 4)?;
                Action::PopVlan
            }
            act::SET_QUEUE => {
                fixed(&b, 4)?;
                Action::SetQueue(b.u32()?)
            }
            act::GROUP => {
                fixed(&b, 4)?;
                Action::Group(b.u32()?)
            }
            act::DEC_NW_TTL => {
                fixed(&b, 4)?;
                Action::DecNwTtl
            }
            _ => Action::Other {
                kind,
                body: b.rest().to_vec(),
            },
        })
    }

    fn encode(&self, w: &mut Writer) {
        let start = w.len();
        match self {
            Action::Output { port, max_len } => {
                w.u16(act::OUTPUT).u16(0).u32(*port).u16(*max_len).zeros(6);
            }
            Action::SetField(f) => {
                w.u16(act::SET_FIELD).u16(0);
                f.encode(w);
                w.pad8();
            }
            Action::PushVlan(t) => {
                w.u16(act::PUSH_VLAN).u16(0).u16(*t).zeros(2);
            }
            Action::PopVlan => {
                w.u16(act::POP_VLAN).u16(0).zeros(4);
            }
            Action::SetQueue(q) => {
                w.u16(act::SET_QUEUE).u16(0).u32(*q);
            }
            Action::Group(g) => {
                w.u16(act::GROUP).u16(0).u32(*g);
            }
            Action::DecNwTtl => {
                w.u16(act::DEC_NW_TTL).u16(0).zeros(4);
            }
            Action::Other { kind, body } => {
                w.u16(*kind).u16(0).bytes(body).pad8();
            }
        }
        w.patch_len(start + 2, start);
    }
}

/// Decodes a list of actions filling `r`.
pub fn decode_actions(r: &mut Reader<'_>) -> Result<Vec<Action>, OfError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        if r.remaining() < 8 {
            return Err(bad_action(err::action::BAD_LEN));
        }
        out.push(Action::decode(r)?);
    }
    Ok(out)
}

/// Appends a list of actions.
pub fn encode_actions(actions: &[Action], w: &mut Writer) {
    for a in actions {
        a.encode(w);
    }
}

/// One instruction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Instruction {
    GotoTable(u8),
    WriteMetadata {
        metadata: u64,
        mask: u64,
    },
    WriteActions(Vec<Action>),
    ApplyActions(Vec<Action>),
    ClearActions,
    Meter(u32),
    /// An instruction type this switch does not interpret.
    Other {
        kind: u16,
        body: Vec<u8>,
    },
}

impl Instruction {
    fn decode(r: &mut Reader<'_>) -> Result<Instruction, OfError> {
        let kind = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < 8 || len % 8 != 0 {
            return Err(bad_inst(err::instruction::BAD_LEN));
        }
        let mut b = r.sub(len - 4, bad_inst(err::instruction::BAD_LEN))?;
        let fixed = |b: &Reader<'_>, body: usize| {
            if b.remaining() == body {
                Ok(())
            } else {
                Err(bad_inst(err::instruction::BAD_LEN))
            }
        };
        Ok(match kind {
            inst::GOTO_TABLE => {
                fixed(&b, 4)?;
                Instruction::GotoTable(b.u8()?)
            }
            inst::WRITE_METADATA => {
                fixed(&b, 20)?;
                b.skip(4)?;
                let metadata = b.u64()?;
                let mask = b.u64()?;
                Instruction::WriteMetadata { metadata, mask }
            }
            inst::WRITE_ACTIONS | inst::APPLY_ACTIONS | inst::CLEAR_ACTIONS => {
                b.skip(4)?;
                let actions = decode_actions(&mut b)?;
                match kind {
                    inst::WRITE_ACTIONS => Instruction::WriteActions(actions),
                    inst::APPLY_ACTIONS => Instruction::ApplyActions(actions),
                    _ if actions.is_empty() => Instruction::ClearActions,
                    _ => return Err(bad_inst(err::instruction::BAD_LEN)),
                }
            }
            inst::METER => {
                fixed(&b, 4)?;
                Instruction::Meter(b.u32()?)
            }
            _ => Instruction::Other {
                kind,
                body: b.rest().to_vec(),
            },
        })
    }

    fn encode(&self, w: &mut Writer) {
        let start = w.len();
        match self {
            Instruction::GotoTable(t) => {
                w.u16(inst::GOTO_TABLE).u16(0).u8(*t).zeros(3);
            }
            Instruction::WriteMetadata { metadata, mask } => {
                w.u16(inst::WRITE_METADATA)
                    .u16(0)
                    .zeros(4)
                    .u64(*metadata)
                    .u64(*mask);
            }
            Instruction::WriteActions(a) | Instruction::ApplyActions(a) => {
                let kind = if matches!(self, Instruction::WriteActions(_)) {
                    inst::WRITE_ACTIONS
                } else {
                    inst::APPLY_ACTIONS
                };
                w.u16(kind).u16(0).zeros(4);
                encode_actions(a, w);
            }
            Instruction::ClearActions => {
                w.u16(inst::CLEAR_ACTIONS).u16(0).zeros(4);
            }
            Instruction::Meter(m) => {
                w.u16(inst::METER).u16(0).u32(*m);
            }
            Instruction::Other { kind, body } => {
                w.u16(*kind).u16(0).bytes(body).pad8();
            }
        }
        w.patch_len(start + 2, start);
    }
}

/// Decodes a list of instructions filling `r`.
pub fn decode_instructions(r: &mut Reader<'_>) -> Result<Vec<Instruction>, OfError> {
    let mut out: Vec<Instruction> = Vec::new();
    while !r.is_empty() {
        if r.remaining() < 8 {
            return Err(bad_inst(err::instruction::BAD_LEN));
        }
        let i = Instruction::decode(r)?;
        // OpenFlow 1.3 §5.9: at most one instruction of each type.
        if out
            .iter()
            .any(|o| std::mem::discriminant(o) == std::mem::discriminant(&i))
        {
            return Err(OfError::new(
                err::BAD_INSTRUCTION,
                err::instruction::UNSUP_INST,
            ));
        }
        out.push(i);
    }
    Ok(out)
}

/// Appends a list of instructions.
pub fn encode_instructions(instructions: &[Instruction], w: &mut Writer) {
    for i in instructions {
        i.encode(w);
    }
}

#[cfg(test)]
mod tests {
    use super::super::consts::port;
    use super::super::oxm::Masked;
    use super::*;

    fn round_trip(i: &[Instruction]) -> Result<Vec<Instruction>, OfError> {
        let mut w = Writer::new();
        encode_instructions(i, &mut w);
        assert_eq!(w.len() % 8, 0);
        decode_instructions(&mut Reader::new(&w.buf, OfError::bad_len()))
    }

    #[test]
    fn instructions_round_trip() {
        let i = vec![
            Instruction::Meter(3),
            Instruction::ApplyActions(vec![
                Action::SetField(Field::TunnelId(Masked::exact(5001))),
                Action::Output {
                    port: 2,
                    max_len: 0,
                },
                Action::Output {
                    port: port::CONTROLLER,
                    max_len: 128,
                },
            ]),
            Instruction::ClearActions,
        ];
        assert_eq!(round_trip(&i), Ok(i));
    }

    #[test]
    fn output_is_sixteen_bytes() {
        let mut w = Writer::new();
        encode_actions(
            &[Action::Output {
                port: 1,
                max_len: 0xffe5,
            }],
            &mut w,
        );
        assert_eq!(
            w.buf,
            [0, 0, 0, 16, 0, 0, 0, 1, 0xff, 0xe5, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn bad_lengths() {
        // An output action claiming 12 bytes.
        let raw = [0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            decode_actions(&mut Reader::new(&raw, OfError::bad_len())),
            Err(bad_action(err::action::BAD_LEN))
        );
        // An instruction longer than what is left.
        let raw = [0, 6, 0, 16, 0, 0, 0, 1];
        assert_eq!(
            decode_instructions(&mut Reader::new(&raw, OfError::bad_len())),
            Err(bad_inst(err::instruction::BAD_LEN))
        );
        // Two meter instructions.
        let raw = [0, 6, 0, 8, 0, 0, 0, 1, 0, 6, 0, 8, 0, 0, 0, 2];
        assert_eq!(
            decode_instructions(&mut Reader::new(&raw, OfError::bad_len())),
            Err(OfError::new(
                err::BAD_INSTRUCTION,
                err::instruction::UNSUP_INST
            ))
        );
    }
}
