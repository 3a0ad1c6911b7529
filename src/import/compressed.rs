//! Compressed input: gzip is recognised by its magic bytes, whatever the
//! input is called (a file or standard input), and decompressed as it
//! streams (feature `gzip`).

use std::io::{self, BufRead, BufReader, Read};

/// The first two bytes of every gzip member (RFC 1952 §2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How much is read from the input at a time.
const BUFFER_BYTES: usize = 64 * 1024;

/// `input` as it should be read: decompressed if it is gzip, as it is if not;
/// and whether it was compressed (its size then says nothing of the lines').
///
/// Concatenated gzip members (as `cat a.gz b.gz` or `pigz` make) are read as
/// one stream.
///
/// # Errors
///
/// An I/O error reading the first bytes; without the `gzip` feature, an
/// [`io::ErrorKind::Unsupported`] error for gzip input, so that compressed
/// bytes are never taken for bad lines.
pub(crate) fn decompressed<'a>(
    mut input: impl Read + 'a,
) -> io::Result<(Box<dyn BufRead + 'a>, bool)> {
    let mut magic = [0u8; 2];
    let mut seen = 0;
    // A pipe may hand out one byte at a time.
    while seen < magic.len() {
        match input.read(&mut magic[seen..]) {
            Ok(0) => break,
            Ok(n) => seen += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    let whole = io::Cursor::new(magic[..seen].to_vec()).chain(input);
    if magic[..seen] == GZIP_MAGIC {
        Ok((gunzip(whole)?, true))
    } else {
        Ok((
            Box::new(BufReader::with_capacity(BUFFER_BYTES, whole)),
            false,
        ))
    }
}

#[cfg(feature = "gzip")]
fn gunzip<'a>(input: impl Read + 'a) -> io::Result<Box<dyn BufRead + 'a>> {
    Ok(Box::new(BufReader::with_capacity(
        BUFFER_BYTES,
        flate2::read::MultiGzDecoder::new(input),
    )))
}

#[cfg(not(feature = "gzip"))]
fn gunzip<'a>(_input: impl Read + 'a) -> io::Result<Box<dyn BufRead + 'a>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the input is gzip-compressed; build cio-ratelimit with the `gzip` feature to read it",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per read, as a slow pipe may.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((&byte, rest)), Some(slot)) => {
                    *slot = byte;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn read_all(input: impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decompressed(input)?.0.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn plain_input_passes_through_unchanged_however_it_trickles_in() {
        let text = b"{\"a\":1}\n{\"b\":2}\n";
        assert_eq!(read_all(&text[..]).unwrap(), text);
        assert_eq!(read_all(Trickle(text)).unwrap(), text);
        assert_eq!(read_all(&b""[..]).unwrap(), b"");
        assert_eq!(
            read_all(&[0x1f][..]).unwrap(),
            [0x1f],
            "one byte is not gzip"
        );
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn gzip_is_decompressed_by_its_magic_bytes_including_concatenated_members() {
        use std::io::Write;
        let gzip = |text: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(text).unwrap();
            encoder.finish().unwrap()
        };
        let mut both = gzip(b"line 1\n");
        both.extend(gzip(b"line 2\n"));
        assert_eq!(read_all(&both[..]).unwrap(), b"line 1\nline 2\n");
        assert_eq!(read_all(Trickle(&both)).unwrap(), b"line 1\nline 2\n");
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn a_truncated_gzip_stream_is_an_error_not_short_input() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&[b'x'; 10_000]).unwrap();
        let whole = encoder.finish().unwrap();
        let cut = &whole[..whole.len() / 2];
        assert!(read_all(cut).is_err());
    }

    #[cfg(not(feature = "gzip"))]
    #[test]
    fn without_the_feature_gzip_input_is_refused_not_misread() {
        let err = read_all(&[0x1f, 0x8b, 8, 0][..]).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    }
}
