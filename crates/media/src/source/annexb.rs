//! H.264 Annex B byte-stream parsing: NAL unit splitting, access-unit grouping
//! and the few slice-header fields the engine checks (ITU-T H.264 sections 7.3
//! and B.1).

/// NAL unit types used here (ITU-T H.264 table 7-1).
pub mod nal_type {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
}

/// Returns the NAL units of an Annex B stream, without start codes.
pub fn split_nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }

    let mut units = Vec::with_capacity(starts.len());
    for (index, &start) in starts.iter().enumerate() {
        let mut end = starts.get(index + 1).map_or(stream.len(), |next| next - 3);
        // A four-byte start code leaves one zero byte at the end of the previous unit,
        // and trailing_zero_8bits may add more.
        while end > start && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > start {
            units.push(&stream[start..end]);
        }
    }
    units
}

pub fn nal_unit_type(unit: &[u8]) -> u8 {
    unit.first().map_or(0, |header| header & 0x1f)
}

pub fn is_vcl(unit: &[u8]) -> bool {
    matches!(nal_unit_type(unit), 1..=5)
}

/// Slice header fields read from a VCL NAL unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceHeader {
    pub first_mb_in_slice: u32,
    /// `slice_type` modulo 5: 0 P, 1 B, 2 I, 3 SP, 4 SI.
    pub slice_type: u32,
}

impl SliceHeader {
    pub fn is_b(&self) -> bool {
        self.slice_type == 1
    }
}

/// Parses the start of a slice header, or returns `None` when the unit is too short.
pub fn parse_slice_header(unit: &[u8]) -> Option<SliceHeader> {
    let payload = remove_emulation_prevention(unit.get(1..)?);
    let mut reader = BitReader::new(&payload);
    let first_mb_in_slice = reader.read_ue()?;
    let slice_type = reader.read_ue()? % 5;
    Some(SliceHeader {
        first_mb_in_slice,
        slice_type,
    })
}

/// Groups NAL units into access units (one coded picture each, with the
/// parameter sets and SEI that precede it).
pub fn group_access_units<'a>(units: &[&'a [u8]]) -> Vec<Vec<&'a [u8]>> {
    let mut access_units: Vec<Vec<&'a [u8]>> = Vec::new();
    let mut current: Vec<&'a [u8]> = Vec::new();
    let mut current_has_vcl = false;

    for &unit in units {
        let starts_new = if is_vcl(unit) {
            current_has_vcl
                && parse_slice_header(unit).is_some_and(|header| header.first_mb_in_slice == 0)
        } else {
            current_has_vcl
                && matches!(
                    nal_unit_type(unit),
                    nal_type::SEI | nal_type::SPS | nal_type::PPS | nal_type::AUD
                )
        };
        if starts_new {
            access_units.push(std::mem::take(&mut current));
            current_has_vcl = false;
        }
        current_has_vcl |= is_vcl(unit);
        current.push(unit);
    }
    if !current.is_empty() {
        access_units.push(current);
    }
    access_units
}

/// Joins NAL units into one Annex B buffer with four-byte start codes.
pub fn join_annexb(units: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(units.iter().map(|unit| unit.len() + 4).sum());
    for unit in units {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(unit);
    }
    out
}

/// Returns whether an Annex B buffer holds an IDR slice.
pub fn contains_idr(stream: &[u8]) -> bool {
    split_nal_units(stream)
        .iter()
        .any(|unit| nal_unit_type(unit) == nal_type::IDR)
}

/// Strips the 0x03 bytes inserted after two zero bytes (section 7.4.1).
fn remove_emulation_prevention(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &byte in data {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// Reads Exp-Golomb codes, most significant bit first.
struct BitReader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, position: 0 }
    }

    fn read_bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.position / 8)?;
        let bit = (byte >> (7 - self.position % 8)) & 1;
        self.position += 1;
        Some(u32::from(bit))
    }

    fn read_ue(&mut self) -> Option<u32> {
        let mut leading_zeros = 0;
        while self.read_bit()? == 0 {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return None;
            }
        }
        let mut value = 0u32;
        for _ in 0..leading_zeros {
            value = (value << 1) | self.read_bit()?;
        }
        Some((1u32 << leading_zeros) - 1 + value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_handles_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        let units = split_nal_units(&stream);
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4][..]]
        );
    }

    #[test]
    fn exp_golomb_values() {
        // Bits: 1 | 010 | 011 | 00100 -> 0, 1, 2, 3
        let data = [0b1010_0110, 0b0100_0000];
        let mut reader = BitReader::new(&data);
        assert_eq!(reader.read_ue(), Some(0));
        assert_eq!(reader.read_ue(), Some(1));
        assert_eq!(reader.read_ue(), Some(2));
        assert_eq!(reader.read_ue(), Some(3));
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(
            remove_emulation_prevention(&[0, 0, 3, 1, 0, 0, 3]),
            vec![0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn slice_type_b_is_detected() {
        // first_mb_in_slice = 0 ("1"), slice_type = 6 ("00111") -> B (6 % 5 == 1).
        let unit = [0x01, 0b1001_1100];
        let header = parse_slice_header(&unit).unwrap();
        assert_eq!(header.first_mb_in_slice, 0);
        assert!(header.is_b());
    }
}
