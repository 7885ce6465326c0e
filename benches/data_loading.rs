//! Loading speed of a 50 MB word-level corpus (`train.txt` + `valid.txt` + `test.txt`): read,
//! count words, build the vocabulary, encode every split.
//!
//! `cargo bench --bench data_loading`

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use radam_train::datasets::lm::{LmCorpus, VocabularyOptions};
use radam_train::datasets::markov::MarkovSource;

fn corpus_loading(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // About 7 bytes per token with these pseudo-words: 11.7 M + 0.73 M + 0.73 M tokens ≈ 50 MB.
    MarkovSource::new(10_000, 8, 12.0, 0)
        .expect("valid source")
        .write_text(dir.path(), [11_700_000, 730_000, 730_000], 1)
        .expect("corpus written");
    let bytes: u64 = ["train.txt", "valid.txt", "test.txt"]
        .iter()
        .map(|name| std::fs::metadata(dir.path().join(name)).unwrap().len())
        .sum();
    println!("corpus size: {:.1} MB", bytes as f64 / 1e6);

    let mut group = c.benchmark_group("lm_corpus");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("word_level_50MB", |b| {
        b.iter(|| LmCorpus::word_level(dir.path(), &VocabularyOptions::default()).expect("loads"))
    });
    group.finish();
}

criterion_group!(benches, corpus_loading);
criterion_main!(benches);
