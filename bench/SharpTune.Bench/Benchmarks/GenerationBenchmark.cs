using System.Diagnostics;
using SharpTune.Generation;
using SharpTune.Models;

namespace SharpTune.Bench.Benchmarks;

/// <summary>Text generation speed: prefill (prompt) and decode tokens/s at batch 1 and 8, and the decode time per
/// token as the sequence grows (with a pre-allocated KV cache only attention should grow with length).</summary>
public sealed class GenerationBenchmark : IBenchmark
{
    public string Name => "generate";
    public string Description => "Generation tokens/s (prefill and decode, batch 1 and 8) and decode ms/token vs sequence length; stories260K and the Llama fixture.";

    public IEnumerable<Measure> Run(BenchContext context)
    {
        foreach (var (label, directory) in new[] { ("stories260K", context.RepoPath("models", "stories260K")), ("llama-mini", context.RepoPath("tests", "fixtures", "models", "llama-lm")) })
        {
            using var loaded = AutoModel.FromPretrained(directory, ModelTask.CausalLM, context.Device, context.DType);
            var model = (ICausalLM)loaded;
            var generator = new TextGenerator(model);
            // No EOS: every run generates exactly the tokens asked for.
            var config = new GenerationConfig { EosTokenIds = [] };
            var promptLength = Math.Min(64, model.MaxPositions / 4);
            var newTokens = context.Quick ? 32 : Math.Min(128, model.MaxPositions / 2);
            generator.Generate([Prompt(promptLength, model.VocabSize, 0)], config with { MaxNewTokens = 8 }); // warm-up

            foreach (var batch in new[] { 1, 8 })
            {
                var prompts = Enumerable.Range(0, batch).Select(i => Prompt(promptLength, model.VocabSize, i)).ToList();
                var repeats = context.Quick ? 1 : 3;
                double prefill = 0, decode = 0;
                for (var r = 0; r < repeats; r++)
                {
                    var result = generator.Generate(prompts, config with { MaxNewTokens = newTokens });
                    prefill = Math.Max(prefill, batch * promptLength / result.PrefillTime.TotalSeconds);
                    decode = Math.Max(decode, batch * (newTokens - 1) / result.DecodeTime.TotalSeconds);
                }
                yield return new Measure(Name, $"{label} prefill b={batch} T={promptLength}", "tokens/s", prefill, "transformers", null, HigherIsBetter: true);
                yield return new Measure(Name, $"{label} decode b={batch} new={newTokens}", "tokens/s", decode, "transformers", null, HigherIsBetter: true);
            }

            // Decode cost per token at growing lengths: one sequence from BOS up to the model's last position; the median
            // step time of each window, robust to the process being preempted on a busy machine.
            var total = model.MaxPositions - 1;
            var stamps = new List<double>(total);
            var watch = Stopwatch.StartNew();
            generator.Generate([[1L]], config with { MaxNewTokens = total }, _ => stamps.Add(watch.Elapsed.TotalMilliseconds));
            var window = Math.Max(8, total / 16);
            foreach (var end in new[] { window + 1, total / 2, total })
            {
                var start = end - window;
                var steps = Enumerable.Range(start, window).Select(i => stamps[i] - stamps[i - 1]).Order().ToList();
                var msPerToken = steps[steps.Count / 2];
                yield return new Measure(Name, $"{label} decode at length {start + 1}-{end + 1}", "ms/token (median)", msPerToken, "transformers", null, HigherIsBetter: false);
            }
        }
    }

    /// <summary>Deterministic prompt ids (BOS then pseudo-random tokens), different per row.</summary>
    private static List<long> Prompt(int length, int vocab, int seed)
    {
        var random = new Random(1234 + seed);
        return [1L, .. Enumerable.Range(1, length - 1).Select(_ => (long)random.Next(3, vocab))];
    }
}
