//! A sink that shows nothing (diagnose prints only its report).

use std::io;

use super::{Session, Sink};
use crate::{event::DropView, summary::Summary};

pub struct NullSink;

impl Sink for NullSink {
    fn on_drop(&mut self, _: &DropView<'_>) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: &Summary, _: &Session) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
