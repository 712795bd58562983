using System.Diagnostics;
using System.Text.Json.Nodes;
using SharpTune.Tokenizers;
using Ml = Microsoft.ML.Tokenizers;

namespace SharpTune.Bench.Benchmarks;

/// <summary>
/// Encoding throughput (tokens/s, MB/s of UTF-8 input) of SharpTune's tokenizers against Microsoft.ML.Tokenizers on the
/// same tokenizer and texts (SST-2 train sentences, WikiText-2 lines), single-threaded and in parallel batches; and against
/// Hugging Face tokenizers' encode_batch when Python has it. SharpTune computes full encodings (offsets included), the
/// peer only ids. Both run in this process, under server GC (see the project file).
/// </summary>
public sealed class TokenizerBenchmark : IBenchmark
{
    private const int Repeats = 5;

    public string Name => "tokenizer";
    public string Description => "Tokenizer encode throughput (WordPiece, byte-level BPE, SentencePiece BPE) vs Microsoft.ML.Tokenizers 3.0 and HF tokenizers.";

    private sealed record Case(string Name, Tokenizer SharpTune, Ml.Tokenizer Peer, string TokenizerJsonForPython)
    {
        /// <summary>The peer's ids with the same special tokens as SharpTune ([CLS]/[SEP] for BERT).</summary>
        public IReadOnlyList<int> PeerIds(string text) =>
            Peer is Ml.BertTokenizer bert ? bert.EncodeToIds(text, addSpecialTokens: true) : Peer.EncodeToIds(text);
    }

    public IEnumerable<Measure> Run(BenchContext context)
    {
        var datasets = new (string Name, List<string> Texts)[]
        {
            ("sst2-train", File.ReadLines(context.RepoPath("data", "sst2", "train.tsv")).Skip(1).Select(l => l[(l.IndexOf('\t') + 1)..]).ToList()),
            ("wikitext2", new[] { "wiki.valid.tokens", "wiki.test.tokens" }
                .SelectMany(f => File.ReadLines(context.RepoPath("data", "wikitext2", f))).Where(l => l.Trim().Length > 0).ToList()),
        };
        var temp = Directory.CreateTempSubdirectory("sharptune-tokbench").FullName;
        try
        {
            foreach (var c in Cases(context, temp))
                foreach (var (dataset, all) in datasets)
                {
                    var texts = context.Quick ? all.Take(5000).ToList() : all;
                    var bytes = texts.Sum(t => (long)System.Text.Encoding.UTF8.GetByteCount(t));
                    var agreement = texts.Take(2000).Count(t => c.SharpTune.EncodeToIds(t).AsSpan().SequenceEqual([.. c.PeerIds(t)]));

                    // Main lines compare like with like: our ids-only path against the peer's ids. The "full encodings" lines
                    // time complete Encodings (tokens, offsets, masks) against the same peer ids.
                    long tokens = 0;
                    var (serial, peerSerial) = Best(Repeats, () => { tokens = 0; foreach (var t in texts) tokens += c.SharpTune.EncodeToIds(t).Length; },
                        () => { foreach (var t in texts) c.PeerIds(t); });
                    var (fullSerial, fullPeerSerial) = Best(Repeats, () => { foreach (var t in texts) c.SharpTune.Encode(t); },
                        () => { foreach (var t in texts) c.PeerIds(t); });
                    var (parallel, peerParallel) = Best(Repeats, () => c.SharpTune.EncodeBatchToIds(texts), () => Parallel.ForEach(texts, t => c.PeerIds(t)));
                    var (fullParallel, fullPeerParallel) = Best(Repeats, () => c.SharpTune.EncodeBatch(texts), () => Parallel.ForEach(texts, t => c.PeerIds(t)));
                    var label = $"{c.Name} {dataset}";
                    var cores = $"batch {Environment.ProcessorCount} cores";
                    Console.WriteLine($"# {label}: {texts.Count} texts, {bytes / 1e6:F1} MB, {tokens} tokens; ids identical to Microsoft.ML.Tokenizers on {agreement}/2000 texts");
                    yield return new Measure(Name, $"{label} 1 thread ids", "Mtokens/s", tokens / serial / 1e6, "Microsoft.ML.Tokenizers ids", tokens / peerSerial / 1e6, true);
                    yield return new Measure(Name, $"{label} 1 thread ids", "MB/s", bytes / serial / 1e6, "Microsoft.ML.Tokenizers ids", bytes / peerSerial / 1e6, true);
                    yield return new Measure(Name, $"{label} {cores} ids", "Mtokens/s", tokens / parallel / 1e6, "Microsoft.ML.Tokenizers ids", tokens / peerParallel / 1e6, true);
                    yield return new Measure(Name, $"{label} 1 thread full encodings", "Mtokens/s", tokens / fullSerial / 1e6, "Microsoft.ML.Tokenizers ids", tokens / fullPeerSerial / 1e6, true);
                    yield return new Measure(Name, $"{label} {cores} full encodings", "Mtokens/s", tokens / fullParallel / 1e6, "Microsoft.ML.Tokenizers ids", tokens / fullPeerParallel / 1e6, true);

                    var textsPath = Path.Combine(temp, dataset + ".txt");
                    if (!File.Exists(textsPath))
                        File.WriteAllLines(textsPath, texts.Select(t => t.Replace('\n', ' ')));
                    var hf = PythonPeer.TryRun($$"""
                        import json, time
                        from tokenizers import Tokenizer
                        tok = Tokenizer.from_file({{JsonValue.Create(c.TokenizerJsonForPython).ToJsonString()}})
                        texts = open({{JsonValue.Create(textsPath).ToJsonString()}}, encoding="utf-8").read().split("\n")[:{{texts.Count}}]
                        tok.encode_batch(texts[:1000])
                        best = 1e9
                        for _ in range({{Repeats}}):
                            t = time.perf_counter(); encs = tok.encode_batch(texts); best = min(best, time.perf_counter() - t)
                        print(json.dumps({"seconds": best, "tokens": sum(len(e.ids) for e in encs)}))
                        """);
                    if (hf is { } result)
                        yield return new Measure(Name, $"{label} {cores} full encodings", "Mtokens/s", tokens / fullParallel / 1e6,
                            "HF tokenizers encode_batch", result.GetProperty("tokens").GetInt64() / result.GetProperty("seconds").GetDouble() / 1e6, true);
                }
        }
        finally
        {
            Directory.Delete(temp, true);
        }
    }

    private static IEnumerable<Case> Cases(BenchContext context, string temp)
    {
        var bertDir = context.RepoPath("tests", "fixtures", "tokenizers", "real", "bert-base-uncased");
        yield return new Case("bert-base-uncased WordPiece", AutoTokenizer.FromPretrained(bertDir),
            Ml.BertTokenizer.Create(Path.Combine(bertDir, "vocab.txt"), new Ml.BertOptions { LowerCaseBeforeTokenization = true }),
            Path.Combine(bertDir, "tokenizer.json"));

        // Byte-level BPE (the fixture tokenizer trained on the fixture corpus) as GPT-2 vocab.json + merges.txt for the peer.
        var bpeJson = context.RepoPath("tests", "fixtures", "tokenizers", "bytelevel-bpe.tokenizer.json");
        var model = JsonNode.Parse(File.ReadAllText(bpeJson))!["model"]!;
        var vocab = Path.Combine(temp, "vocab.json");
        var merges = Path.Combine(temp, "merges.txt");
        File.WriteAllText(vocab, model["vocab"]!.ToJsonString());
        File.WriteAllLines(merges, ["#version: 0.2", .. model["merges"]!.AsArray().Select(m => $"{m![0]} {m[1]}")]);
        using (var vocabStream = File.OpenRead(vocab))
        using (var mergesStream = File.OpenRead(merges))
            yield return new Case("byte-level BPE", Tokenizer.FromFile(bpeJson),
                Ml.CodeGenTokenizer.Create(vocabStream, mergesStream, addPrefixSpace: false, addBeginOfSentence: false, addEndOfSentence: false),
                bpeJson);

        var llama = context.RepoPath("tests", "fixtures", "tokenizers", "real", "llama2", "tokenizer.model");
        var sharpLlama = AutoTokenizer.FromPretrained(llama);
        var llamaJson = Path.Combine(temp, "llama-tokenizer.json");
        sharpLlama.Save(llamaJson);
        using (var stream = File.OpenRead(llama))
            yield return new Case("Llama-2 SentencePiece BPE", sharpLlama,
                Ml.LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false), llamaJson);
    }

    /// <summary>
    /// Best time of each side over <paramref name="repeats"/> runs, the two sides alternating so that both see the same
    /// machine load (on a shared machine, load changes between two separate series skew the ratio more than anything).
    /// </summary>
    private static (double Ours, double Peer) Best(int repeats, Action ours, Action peer)
    {
        WarmUp(ours);
        WarmUp(peer);
        double bestOurs = double.MaxValue, bestPeer = double.MaxValue;
        for (var i = 0; i < repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            ours();
            bestOurs = Math.Min(bestOurs, watch.Elapsed.TotalSeconds);
            watch.Restart();
            peer();
            bestPeer = Math.Min(bestPeer, watch.Elapsed.TotalSeconds);
        }
        return (bestOurs, bestPeer);
    }

    /// <summary>Runs <paramref name="work"/> until tiered JIT has had time to recompile its hot paths (at least 5 passes
    /// and 2 seconds): timing after a single warm-up pass measured partly unoptimised code on either side.</summary>
    private static void WarmUp(Action work)
    {
        var watch = Stopwatch.StartNew();
        for (var pass = 0; pass < 5 || watch.Elapsed.TotalSeconds < 2; pass++)
            work();
    }
}
