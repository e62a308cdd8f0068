//! Small deterministic PNG images for the fake image generations, written by hand: an 8×8
//! RGB image, zlib with one stored (uncompressed) deflate block, CRC-32 per chunk.

/// Width and height of every image, in pixels.
const SIDE: usize = 8;

/// The eight bytes every PNG file starts with.
pub(crate) const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// An image's seed from its prompt and its index in a generation (FNV-1a, stable across
/// runs, unlike `std`'s hasher).
pub(crate) fn seed(prompt: &str, index: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in prompt.bytes().chain(index.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The PNG for `seed`: a checkerboard of two colours taken from the seed's bytes.
pub(crate) fn render(seed: u64) -> Vec<u8> {
    let bytes = seed.to_le_bytes();
    let light = [bytes[0] | 0x80, bytes[1] | 0x80, bytes[2] | 0x80];
    let dark = [bytes[3] & 0x7f, bytes[4] & 0x7f, bytes[5] & 0x7f];

    // Each scanline: filter type 0 (None), then RGB triples.
    let mut raw = Vec::with_capacity(SIDE * (1 + 3 * SIDE));
    for y in 0..SIDE {
        raw.push(0);
        for x in 0..SIDE {
            raw.extend_from_slice(if (x + y) % 2 == 0 { &light } else { &dark });
        }
    }

    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&(SIDE as u32).to_be_bytes());
    header.extend_from_slice(&(SIDE as u32).to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);

    let mut png = SIGNATURE.to_vec();
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    chunk(&mut png, b"IEND", &[]);
    png
}

/// Appends a PNG chunk: length, type, data, CRC-32 of type and data.
fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream holding `data` in a single stored deflate block (so at most 65 535 bytes).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    let data = &data[..usize::from(len)];
    let mut out = vec![0x78, 0x01, 0x01];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// CRC-32 (IEEE, reflected), bit by bit: images are tiny.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Adler-32, zlib's checksum.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn images_are_well_formed_and_depend_on_the_seed() {
        let png = render(seed("a red fox", 0));
        assert!(png.starts_with(&SIGNATURE));
        assert_eq!(&png[12..16], b"IHDR");
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]));
        assert_ne!(png, render(seed("a blue fox", 0)));
        assert_ne!(seed("a red fox", 0), seed("a red fox", 1));
        assert_eq!(png, render(seed("a red fox", 0)));
    }
}
