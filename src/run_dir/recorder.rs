//! The recorder of every checkpoint and of the final model: Burn's named MessagePack at full
//! precision (RAdam's second moments need it; `DefaultRecorder` reads the files), serialised in
//! memory and written atomically with every I/O error seen, then its SHA-256 beside it. During
//! training a failed write does not panic inside Burn's checkpointer thread: it is reported to the
//! run's [`WriteFailures`], which stops the training, and the run ends with an `error:` line.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::record::{
    FileRecorder, FullPrecisionSettings, NamedMpkBytesRecorder, Recorder, RecorderError,
};
use burn::tensor::backend::Backend;
use burn::train::Interrupter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{checksum, write_into_existing};

/// The format's extension, as Burn's `DefaultRecorder` names it.
const EXTENSION: &str = "mpk";

/// The first write that failed during a training run, shared by everything that writes for it,
/// and the interrupter that stops the run on it.
#[derive(Clone, Default)]
pub struct WriteFailures {
    first: Arc<Mutex<Option<String>>>,
    interrupter: Option<Interrupter>,
}

impl std::fmt::Debug for WriteFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteFailures")
            .field("first", &self.first())
            .field("stops_the_run", &self.interrupter.is_some())
            .finish()
    }
}

impl WriteFailures {
    /// Failures that stop the training through `interrupter`.
    pub fn stopping(interrupter: Interrupter) -> Self {
        Self {
            first: Arc::default(),
            interrupter: Some(interrupter),
        }
    }

    /// Reports a failed write (`message` names the path and the OS error) and stops the run;
    /// only the first failure is kept, the later ones follow from it.
    pub fn report(&self, message: String) {
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(message);
        }
        if let Some(interrupter) = &self.interrupter {
            interrupter.stop();
        }
    }

    /// The first failure, if any.
    pub fn first(&self) -> Option<String> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Burn's named MessagePack recorder (what `DefaultRecorder` writes), writing atomically with a
/// checksum; with [`reporting_to`](Self::reporting_to), a failed write is reported instead of
/// returned.
#[derive(Clone, Debug, Default)]
pub struct RunRecorder {
    format: NamedMpkBytesRecorder<FullPrecisionSettings>,
    failures: Option<WriteFailures>,
}

impl RunRecorder {
    /// A recorder whose failed writes go to `failures` (and save nothing) instead of being
    /// returned: for Burn's checkpointer, which panics on an error.
    pub fn reporting_to(failures: WriteFailures) -> Self {
        Self {
            failures: Some(failures),
            ..Self::default()
        }
    }
}

impl<B: Backend> Recorder<B> for RunRecorder {
    type Settings = FullPrecisionSettings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, mut path: PathBuf) -> Result<(), RecorderError> {
        path.set_extension(EXTENSION);
        let bytes = Recorder::<B>::save_item(&self.format, item, ())?;
        let written =
            write_into_existing(&path, &bytes).and_then(|()| checksum::record(&path, &bytes));
        if let Some(dir) = path.parent() {
            checksum::remove_orphans(dir);
        }
        let Err(error) = written else {
            return Ok(());
        };
        let message = format!("cannot write {}: {error}", path.display());
        match &self.failures {
            Some(failures) => {
                failures.report(message);
                Ok(())
            }
            None => Err(RecorderError::Unknown(message)),
        }
    }

    fn load_item<I: DeserializeOwned>(&self, path: &mut PathBuf) -> Result<I, RecorderError> {
        path.set_extension(EXTENSION);
        let mut bytes = std::fs::read(&*path).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => RecorderError::FileNotFound(path.display().to_string()),
            _ => RecorderError::Unknown(format!("cannot read {}: {error}", path.display())),
        })?;
        Recorder::<B>::load_item(&self.format, &mut bytes)
    }
}

impl<B: Backend> FileRecorder<B> for RunRecorder {
    fn file_extension() -> &'static str {
        EXTENSION
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};

    #[test]
    fn it_writes_what_the_default_recorder_reads_with_a_checksum_and_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let device = Default::default();
        let model: Linear<NdArray> = LinearConfig::new(3, 2).init(&device);
        let path = dir.path().join("model-1");
        model
            .clone()
            .save_file(&path, &RunRecorder::default())
            .unwrap();
        let file = dir.path().join("model-1.mpk");
        assert!(file.is_file());
        assert!(!dir.path().join(".partial-model-1.mpk").exists());
        assert_eq!(checksum::check(&file).unwrap(), checksum::Integrity::Intact);
        for loaded in [
            LinearConfig::new(3, 2)
                .init::<NdArray>(&device)
                .load_file(&path, &burn::record::DefaultRecorder::new(), &device)
                .unwrap(),
            LinearConfig::new(3, 2)
                .init::<NdArray>(&device)
                .load_file(&path, &RunRecorder::default(), &device)
                .unwrap(),
        ] {
            assert_eq!(
                loaded.weight.val().into_data(),
                model.weight.val().into_data()
            );
        }
    }

    #[test]
    fn a_failed_write_is_returned_or_reported_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the checkpoint folder should be: every write into it fails.
        let blocked = dir.path().join("checkpoint");
        std::fs::write(&blocked, b"").unwrap();
        let model: Linear<NdArray> = LinearConfig::new(3, 2).init(&Default::default());
        let error = model
            .clone()
            .save_file(blocked.join("model-1"), &RunRecorder::default())
            .unwrap_err();
        let RecorderError::Unknown(message) = error else {
            panic!("{error:?}")
        };
        assert!(
            message.starts_with(&format!(
                "cannot write {}: ",
                blocked.join("model-1.mpk").display()
            )),
            "{message}"
        );
        let failures = WriteFailures::default();
        model
            .clone()
            .save_file(
                blocked.join("model-2"),
                &RunRecorder::reporting_to(failures.clone()),
            )
            .unwrap();
        let reported = failures.first().expect("the failure is reported");
        assert_eq!(
            reported,
            format!(
                "cannot write {}: {} is not a directory",
                blocked.join("model-2.mpk").display(),
                blocked.display()
            )
        );
        // A run directory deleted while the run trains is not made again.
        let gone = dir.path().join("run/checkpoint");
        let model: Linear<NdArray> = LinearConfig::new(3, 2).init(&Default::default());
        let error = model
            .save_file(gone.join("model-3"), &RunRecorder::default())
            .unwrap_err();
        assert!(
            format!("{error:?}").contains("checkpoint is gone (No such file or directory)"),
            "{error:?}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
