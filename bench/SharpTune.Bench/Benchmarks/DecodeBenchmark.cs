using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Quantization;
using static TorchSharp.torch;

namespace SharpTune.Bench.Benchmarks;

/// <summary>
/// Batch-1 greedy decoding tokens/s on the CPU against the C programs people compare with, measured in the same run:
/// llama2.c's run.c (gcc -O3 and -Ofast), Debian's python3-torch running a plain KV-cache loop, and llama.cpp (F32 and
/// Q8_0 from its llama2.c converter), on stories260K and on random llama2.c checkpoints of the stories15M and stories110M
/// shapes, at 1 and 2 threads (each program's best count is compared). A STREAM-style copy and a read-only sum give the
/// machine's memory bandwidth, so each figure is also reported as a fraction of the bandwidth limit (weight bytes × tokens/s / bandwidth).
/// Peers are optional and never part of the repository: SHARPTUNE_PEERS names a folder holding the user's own builds
/// (llama2.c/run_O3, llama2.c/run_Ofast, llama.cpp/build/bin/{llama-bench, llama-convert-llama2c-to-ggml,
/// llama-quantize}); the ones missing are reported as n/a. Rounds alternate the programs so load changes hit all alike;
/// each figure is its best round.
/// </summary>
public sealed partial class DecodeBenchmark : IBenchmark
{
    private sealed record Shape(string Name, int Dim, int Hidden, int Layers, int Heads, int Vocab, int NewTokens);

    private static readonly Shape[] Shapes =
    [
        new("stories260K", 0, 0, 0, 0, 0, 256),
        new("15M", 288, 768, 6, 6, 32000, 256),
        new("110M", 768, 2048, 12, 12, 32000, 64),
    ];

    /// <summary>Thread counts tried for every program: SHARPTUNE_DECODE_THREADS (e.g. "1,2"), default 1 and 2.</summary>
    private static readonly int[] ThreadCounts = (Environment.GetEnvironmentVariable("SHARPTUNE_DECODE_THREADS") ?? "1,2")
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();

    /// <summary>A peer run that takes longer is dropped (reported n/a): on an oversubscribed machine an OpenMP program
    /// at 2 threads can fall to a few tokens/s.</summary>
    private static readonly TimeSpan PeerTimeout = TimeSpan.FromSeconds(
        double.Parse(Environment.GetEnvironmentVariable("SHARPTUNE_DECODE_PEER_TIMEOUT") ?? "180", CultureInfo.InvariantCulture));

    public string Name => "decode";
    public string Description => "Batch-1 greedy decode tokens/s (fp32, int8, NF4) vs llama2.c -O3/-Ofast, python3-torch and llama.cpp F32/Q8_0, as fractions of memory bandwidth.";

    public IEnumerable<Measure> Run(BenchContext context)
    {
        var peers = Environment.GetEnvironmentVariable("SHARPTUNE_PEERS")
                    ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "sharptune-peers");
        var work = Environment.GetEnvironmentVariable("SHARPTUNE_BENCH_DIR") ?? Path.Combine(Path.GetTempPath(), "sharptune-decode-bench");
        Directory.CreateDirectory(work);
        var rounds = int.Parse(Environment.GetEnvironmentVariable("SHARPTUNE_DECODE_ROUNDS") ?? (context.Quick ? "1" : "3"), CultureInfo.InvariantCulture);
        var bandwidth = new Bandwidth();
        bandwidth.Measure();
        Console.WriteLine($"# decode: load average {LoadAverage()}; peers from {peers}; best of {rounds} alternated rounds ({3 * rounds} for stories260K); "
                          + $"memory bandwidth measured every round, first {bandwidth}");
        var results = new List<Measure>();
        // SHARPTUNE_DECODE_SHAPES (e.g. "110M") picks shapes; --quick leaves out 110M.
        var picked = Environment.GetEnvironmentVariable("SHARPTUNE_DECODE_SHAPES")?.Split(',', StringSplitOptions.TrimEntries);
        foreach (var shape in Shapes.Where(s => picked is null ? !context.Quick || s.Name != "110M" : picked.Contains(s.Name)))
            results.AddRange(RunShape(context, shape, peers, work, rounds, bandwidth));
        Console.WriteLine($"# decode: load average after {LoadAverage()}; memory bandwidth, best of the run: {bandwidth}");
        return results;
    }

    /// <summary>
    /// The machine's memory bandwidth, the best seen so far in the run (on a shared machine one measurement can read half
    /// of it). Each <see cref="Measure"/> tries 8 times at 1 and at 2 threads over 256 MiB arrays: a STREAM-style copy
    /// (read + write bytes, as STREAM counts them) and a read-only sum, which is what streaming weights does and on some
    /// machines runs faster than a copy. The limit a decoder is held against is the higher of the two.
    /// </summary>
    private sealed class Bandwidth
    {
        private const int Length = 1 << 26; // floats: 256 MiB per array
        private float[]? _source, _target;

        public double Copy { get; private set; }
        public double Read { get; private set; }
        public double Limit => Math.Max(Copy, Read);

        public void Measure()
        {
            if (_source is null || _target is null)
            {
                _source = GC.AllocateUninitializedArray<float>(Length, pinned: true);
                _target = GC.AllocateUninitializedArray<float>(Length, pinned: true);
                _source.AsSpan().Fill(1f);
                _target.AsSpan().Fill(0f);
            }
            float[] source = _source, target = _target;
            for (var trial = 0; trial < 8; trial++)
                foreach (var threads in new[] { 1, 2 })
                {
                    var chunk = Length / threads;
                    var watch = Stopwatch.StartNew();
                    Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads },
                        t => source.AsSpan(t * chunk, chunk).CopyTo(target.AsSpan(t * chunk, chunk)));
                    Copy = Math.Max(Copy, 2.0 * Length * sizeof(float) / watch.Elapsed.TotalSeconds);
                    var sums = new float[threads];
                    watch.Restart();
                    Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads },
                        t => sums[t] = Sum(source.AsSpan(t * chunk, chunk)));
                    Read = Math.Max(Read, 1.0 * Length * sizeof(float) / watch.Elapsed.TotalSeconds);
                }
        }

        public override string ToString() => $"{Limit / 1e9:F2} GB/s (STREAM-style copy {Copy / 1e9:F2}, read-only sum {Read / 1e9:F2})";

        private static float Sum(ReadOnlySpan<float> values)
        {
            Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
            var vectors = MemoryMarshal.Cast<float, Vector<float>>(values);
            var i = 0;
            for (; i + 4 <= vectors.Length; i += 4)
            {
                a0 += vectors[i];
                a1 += vectors[i + 1];
                a2 += vectors[i + 2];
                a3 += vectors[i + 3];
            }
            for (; i < vectors.Length; i++)
                a0 += vectors[i];
            return Vector.Sum(a0 + a1 + (a2 + a3));
        }
    }

    private IEnumerable<Measure> RunShape(BenchContext context, Shape shape, string peers, string work, int rounds, Bandwidth bandwidth)
    {
        var (checkpoint, tokenizer, hfDirectory) = Prepare(context, shape, work);
        var llama2c = Path.Combine(peers, "llama2.c");
        var llamaCpp = Path.Combine(peers, "llama.cpp", "build", "bin");
        var ggufF32 = Path.Combine(work, shape.Name + "-f32.gguf");
        var ggufQ8 = Path.Combine(work, shape.Name + "-q8_0.gguf");
        var hasLlamaCpp = ConvertForLlamaCpp(llamaCpp, checkpoint, tokenizer, ggufF32, ggufQ8);

        var best = new Dictionary<string, double>();
        void Record(string key, double? tokensPerSecond)
        {
            if (tokensPerSecond is { } value && value > 0)
                best[key] = Math.Max(best.GetValueOrDefault(key), value);
        }

        var variants = shape.Name == "stories260K" ? new[] { "fp32" } : ["fp32", "int8", "nf4"];
        var weightBytes = new Dictionary<string, long>();
        var models = variants.ToDictionary(v => v, v => LoadVariant(hfDirectory, v, weightBytes));
        try
        {
            // stories260K runs last 20-250 ms, short enough for one scheduler hiccup to cost 10%: three times the rounds.
            var shapeRounds = shape.Name == "stories260K" ? 3 * rounds : rounds;
            for (var round = 0; round < shapeRounds; round++)
            {
                bandwidth.Measure();
                foreach (var threads in ThreadCounts)
                {
                    foreach (var variant in variants)
                        Record($"sharptune {variant} {threads}t", SharpTuneTokensPerSecond(models[variant], shape.NewTokens, threads));
                    Record($"llama2.c -O3 {threads}t", RunLlama2c(Path.Combine(llama2c, "run_O3"), checkpoint, tokenizer, shape.NewTokens, threads));
                    Record($"llama2.c -Ofast {threads}t", RunLlama2c(Path.Combine(llama2c, "run_Ofast"), checkpoint, tokenizer, shape.NewTokens, threads));
                    Record($"python3-torch {threads}t", RunTorchLoop(checkpoint, shape.NewTokens, threads));
                    if (hasLlamaCpp)
                    {
                        Record($"llama.cpp F32 {threads}t", RunLlamaBench(llamaCpp, ggufF32, shape.NewTokens, threads));
                        if (shape.Name != "stories260K")
                            Record($"llama.cpp Q8_0 {threads}t", RunLlamaBench(llamaCpp, ggufQ8, shape.NewTokens, threads));
                    }
                }
            }
        }
        finally
        {
            foreach (var model in models.Values)
                model.Dispose();
        }

        Console.WriteLine($"#   {shape.Name}: % of the best memory bandwidth so far, {bandwidth}");
        foreach (var (key, value) in best.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var bytes = key.Contains("int8") || key.Contains("Q8_0") ? weightBytes.GetValueOrDefault("int8")
                : key.Contains("nf4") ? weightBytes.GetValueOrDefault("nf4") : weightBytes["fp32"];
            Console.WriteLine($"#   {shape.Name,-12} {key,-26} {value,9:F1} tok/s  {100 * bytes * value / bandwidth.Limit,5:F1}% of bandwidth ({bytes / 1e6:F1} MB/token)");
        }

        double? Best(string prefix) => ThreadCounts.Select(t => best.GetValueOrDefault($"{prefix} {t}t")).Where(v => v > 0).Cast<double?>().Max();
        var ours = Best("sharptune fp32") ?? 0;
        var name = $"{shape.Name} fp32 best threads";
        yield return new Measure(Name, name, "tokens/s", ours, "llama2.c -Ofast best threads", Best("llama2.c -Ofast"), true);
        yield return new Measure(Name, name, "tokens/s", ours, "llama2.c -O3 best threads", Best("llama2.c -O3"), true);
        yield return new Measure(Name, name, "tokens/s", ours, "python3-torch KV loop", Best("python3-torch"), true);
        yield return new Measure(Name, name, "tokens/s", ours, "llama.cpp F32", Best("llama.cpp F32"), true);
        yield return new Measure(Name, $"{shape.Name} fp32 2 threads", "tokens/s", best.GetValueOrDefault("sharptune fp32 2t"),
            "SharpTune fp32 1 thread", best.GetValueOrDefault("sharptune fp32 1t"), true);
        yield return new Measure(Name, $"{shape.Name} fp32 % of bandwidth", "%", 100 * weightBytes["fp32"] * ours / bandwidth.Limit,
            "llama2.c -Ofast", Best("llama2.c -Ofast") is { } c ? 100 * weightBytes["fp32"] * c / bandwidth.Limit : null, true);
        if (variants.Length > 1)
        {
            yield return new Measure(Name, $"{shape.Name} int8 best threads", "tokens/s", Best("sharptune int8") ?? 0, "SharpTune fp32", ours, true);
            yield return new Measure(Name, $"{shape.Name} int8 best threads", "tokens/s", Best("sharptune int8") ?? 0, "llama.cpp Q8_0", Best("llama.cpp Q8_0"), true);
            yield return new Measure(Name, $"{shape.Name} nf4 best threads", "tokens/s", Best("sharptune nf4") ?? 0, "SharpTune fp32", ours, true);
        }
    }

    /// <summary>The llama2.c checkpoint and tokenizer of <paramref name="shape"/> (stories260K's own; random weights for
    /// the others, seeded, written once) and its Hugging Face conversion.</summary>
    private static (string Checkpoint, string Tokenizer, string HfDirectory) Prepare(BenchContext context, Shape shape, string work)
    {
        string checkpoint, tokenizer;
        if (shape.Name == "stories260K")
        {
            checkpoint = context.RepoPath("models", "stories260K", "llama2c", "stories260K.bin");
            tokenizer = context.RepoPath("models", "stories260K", "llama2c", "tok512.bin");
            return (checkpoint, tokenizer, context.RepoPath("models", "stories260K"));
        }
        checkpoint = Path.Combine(work, $"{shape.Name}.bin");
        tokenizer = Path.Combine(work, $"tok{shape.Vocab}.bin");
        var hf = Path.Combine(work, shape.Name + "-hf");
        if (!File.Exists(tokenizer))
            WriteTokenizer(tokenizer, shape.Vocab);
        if (!File.Exists(checkpoint))
            WriteRandomCheckpoint(checkpoint, shape);
        if (!File.Exists(Path.Combine(hf, "model.safetensors")))
            Llama2cImporter.Convert(checkpoint, tokenizer, hf);
        return (checkpoint, tokenizer, hf);
    }

    /// <summary>A llama2.c tokenizer.bin of <paramref name="vocab"/> pieces: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the 256 byte
    /// pieces, then distinct made-up words (decoding speed does not depend on what the pieces are).</summary>
    private static void WriteTokenizer(string path, int vocab)
    {
        var pieces = new List<string> { "<unk>", "\n<s>\n", "\n</s>\n" };
        pieces.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        for (var i = 0; pieces.Count < vocab; i++)
            pieces.Add(" w" + i.ToString(CultureInfo.InvariantCulture));
        using var writer = new BinaryWriter(File.Create(path + ".tmp"));
        writer.Write(pieces.Max(p => System.Text.Encoding.UTF8.GetByteCount(p)));
        for (var i = 0; i < pieces.Count; i++)
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(pieces[i]);
            writer.Write(i < 259 ? 0f : -i);
            writer.Write(bytes.Length);
            writer.Write(bytes);
        }
        writer.Close();
        File.Move(path + ".tmp", path, true);
    }

    /// <summary>A llama2.c legacy checkpoint (shared classifier) with N(0, 0.02) weights and unit norms.</summary>
    private static void WriteRandomCheckpoint(string path, Shape s)
    {
        const int sequenceLength = 1024;
        var random = new Random(1234);
        using var writer = new BinaryWriter(File.Create(path + ".tmp"));
        foreach (var value in new[] { s.Dim, s.Hidden, s.Layers, s.Heads, s.Heads, s.Vocab, sequenceLength })
            writer.Write(value);
        void Normal(long count)
        {
            var buffer = new float[count];
            for (var i = 0; i < count; i++)
                buffer[i] = (float)(0.02 * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
            writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffer.AsSpan()));
        }
        void Ones(long count) => writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Enumerable.Repeat(1f, (int)count).ToArray().AsSpan()));
        long d = s.Dim, h = s.Hidden, l = s.Layers;
        Normal(s.Vocab * d);
        Ones(l * d);
        Normal(l * d * d); // wq
        Normal(l * d * d); // wk
        Normal(l * d * d); // wv
        Normal(l * d * d); // wo
        Ones(l * d);
        Normal(l * h * d); // w1
        Normal(l * d * h); // w2
        Normal(l * h * d); // w3
        Ones(d);
        var half = s.Dim / s.Heads / 2;
        Normal(sequenceLength * half); // freq_cis_real and _imag: read and ignored by every reader
        Normal(sequenceLength * half);
        writer.Close();
        File.Move(path + ".tmp", path, true);
    }

    private static CausalLMModel LoadVariant(string directory, string variant, Dictionary<string, long> weightBytes)
    {
        var model = (CausalLMModel)AutoModel.FromPretrained(directory, ModelTask.CausalLM);
        if (variant != "fp32")
            Quantizer.Quantize(model, variant == "int8" ? new QuantizationOptions { Bits = 8 } : new QuantizationOptions());
        // Every weight matrix is read once per token (the tied embedding as the LM head); norms and biases are noise.
        weightBytes[variant] = model.parameters().Concat(model.buffers()).Sum(t => t.NumberOfElements * t.ElementSize);
        return model;
    }

    private static double SharpTuneTokensPerSecond(CausalLMModel model, int newTokens, int threads)
    {
        var previous = get_num_threads();
        set_num_threads(threads);
        try
        {
            var config = new GenerationConfig { MaxNewTokens = newTokens, EosTokenIds = [] };
            var result = new TextGenerator(model).Generate([[1]], config);
            return (result.GeneratedTokenCount - 1) / result.DecodeTime.TotalSeconds;
        }
        finally
        {
            set_num_threads(previous);
        }
    }

    private static double? RunLlama2c(string binary, string checkpoint, string tokenizer, int newTokens, int threads)
    {
        if (!File.Exists(binary))
            return null;
        var output = RunProcess(binary, [checkpoint, "-z", tokenizer, "-t", "0", "-n", (newTokens + 1).ToString(CultureInfo.InvariantCulture), "-s", "1"], threads);
        var match = output is null ? null : AchievedRegex().Match(output);
        return match is { Success: true } ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : null;
    }

    private static double? RunLlamaBench(string binDirectory, string gguf, int newTokens, int threads)
    {
        var output = RunProcess(Path.Combine(binDirectory, "llama-bench"),
            ["-m", gguf, "-p", "0", "-n", newTokens.ToString(CultureInfo.InvariantCulture), "-r", "1", "-t", threads.ToString(CultureInfo.InvariantCulture), "-o", "json"], threads);
        if (output is null)
            return null;
        try
        {
            using var json = JsonDocument.Parse(output[output.IndexOf('[')..]);
            return json.RootElement.EnumerateArray().Select(e => e.GetProperty("avg_ts").GetDouble()).FirstOrDefault();
        }
        catch (Exception e) when (e is JsonException or ArgumentOutOfRangeException or KeyNotFoundException)
        {
            return null;
        }
    }

    private static bool ConvertForLlamaCpp(string binDirectory, string checkpoint, string tokenizer, string f32, string q8)
    {
        var converter = Path.Combine(binDirectory, "llama-convert-llama2c-to-ggml");
        if (!File.Exists(converter) || !File.Exists(Path.Combine(binDirectory, "llama-bench")))
            return false;
        if (!File.Exists(f32))
            RunProcess(converter, ["--copy-vocab-from-model", tokenizer, "--llama2c-model", checkpoint, "--llama2c-output-model", f32], 2);
        if (File.Exists(f32) && !File.Exists(q8) && File.Exists(Path.Combine(binDirectory, "llama-quantize")))
            RunProcess(Path.Combine(binDirectory, "llama-quantize"), [f32, q8, "Q8_0"], 2);
        return File.Exists(f32);
    }

    /// <summary>Debian's python3-torch decoding with a preallocated KV cache, the loop a PyTorch user writes by hand
    /// (llama2.c's model.py arithmetic, one token per step, greedy).</summary>
    private static double? RunTorchLoop(string checkpoint, int newTokens, int threads)
    {
        var result = PythonPeer.TryRun($$"""
            import os
            # Debian's torch runs its matrix-vector products in OpenBLAS, whose own thread pool (all cores by default)
            # torch.set_num_threads does not size; both read their counts when they load.
            os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "{{threads}}"
            import json, struct, time, numpy as np, torch
            torch.set_num_threads({{threads}})
            f = open("{{checkpoint}}", "rb")
            dim, hidden, layers, heads, kv_heads, vocab, seq = struct.unpack("7i", f.read(28))
            shared = vocab > 0; vocab = abs(vocab); hd = dim // heads
            def read(*shape):
                n = int(np.prod(shape)); return torch.from_numpy(np.fromfile(f, dtype=np.float32, count=n).reshape(shape).copy())
            emb = read(vocab, dim); rms_att = read(layers, dim)
            wq = read(layers, dim, dim); wk = read(layers, kv_heads * hd, dim); wv = read(layers, kv_heads * hd, dim); wo = read(layers, dim, dim)
            rms_ffn = read(layers, dim); w1 = read(layers, hidden, dim); w2 = read(layers, dim, hidden); w3 = read(layers, hidden, dim)
            rms_final = read(dim); read(seq, hd // 2); read(seq, hd // 2)
            wcls = emb if shared else read(vocab, dim)
            freqs = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
            angles = torch.outer(torch.arange(seq).float(), freqs); cos, sin = angles.cos(), angles.sin()
            n = {{newTokens}} + 1
            kc = torch.zeros(layers, kv_heads, n, hd); vc = torch.zeros(layers, kv_heads, n, hd)
            def norm(x, w): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
            def rope(x, p):
                x = x.view(-1, hd // 2, 2); a, b = x[..., 0], x[..., 1]; c, s = cos[p], sin[p]
                return torch.stack([a * c - b * s, a * s + b * c], -1).view(-1, hd)
            def step(token, p):
                x = emb[token]
                for l in range(layers):
                    h = norm(x, rms_att[l])
                    q = rope(torch.mv(wq[l], h), p); k = rope(torch.mv(wk[l], h), p); v = torch.mv(wv[l], h).view(-1, hd)
                    kc[l, :, p] = k; vc[l, :, p] = v
                    keys = kc[l, :, :p + 1].repeat_interleave(heads // kv_heads, 0); values = vc[l, :, :p + 1].repeat_interleave(heads // kv_heads, 0)
                    att = torch.softmax(torch.bmm(keys, q.view(heads, hd, 1)).squeeze(-1) / hd ** 0.5, -1)
                    x = x + torch.mv(wo[l], torch.bmm(att.unsqueeze(1), values).view(-1))
                    h = norm(x, rms_ffn[l])
                    x = x + torch.mv(w2[l], torch.nn.functional.silu(torch.mv(w1[l], h)) * torch.mv(w3[l], h))
                return torch.mv(wcls, norm(x, rms_final))
            with torch.no_grad():
                token = step(1, 0).argmax().item(); t = time.perf_counter()
                for p in range(1, n - 1): token = step(token, p).argmax().item()
                elapsed = time.perf_counter() - t
            print(json.dumps({"tokens_per_second": (n - 2) / elapsed}))
            """, PeerTimeout, File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
        return result?.GetProperty("tokens_per_second").GetDouble();
    }

    private static string? RunProcess(string binary, IEnumerable<string> arguments, int threads)
    {
        if (!File.Exists(binary))
            return null;
        var start = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        start.Environment["OMP_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(PeerTimeout))
        {
            process.Kill(entireProcessTree: true);
            return null;
        }
        return process.ExitCode == 0 ? stdout.Result + "\n" + stderr.Result : null;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    [GeneratedRegex(@"achieved tok/s: ([0-9.]+)")]
    private static partial Regex AchievedRegex();
}
