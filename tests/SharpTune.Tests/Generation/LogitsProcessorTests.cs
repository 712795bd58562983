using System.Text.Json;
using SharpTune.Generation;
using SharpTune.Tests.Support;
using static TorchSharp.torch;

namespace SharpTune.Tests.Generation;

public class LogitsProcessorTests
{
    private static float[] Run(ILogitsProcessor processor, float[] scores, long[]? tokens = null, long[]? mask = null)
    {
        using var scope = NewDisposeScope();
        tokens ??= [0];
        mask ??= tokens.Select(_ => 1L).ToArray();
        var result = processor.Process(tensor(tokens).unsqueeze(0), tensor(mask).unsqueeze(0), tensor(scores).unsqueeze(0));
        return result.squeeze(0).data<float>().ToArray();
    }

    private static float[] LogProbabilities(params double[] p) => p.Select(x => (float)Math.Log(x)).ToArray();

    [Fact]
    public void TopKKeepsTheKHighest() =>
        Assert.Equal([float.NegativeInfinity, 3f, 2f, float.NegativeInfinity], Run(new TopKProcessor(2), [1, 3, 2, 0]));

    [Fact]
    public void TopPKeepsTheSmallestNucleusReachingP()
    {
        var scores = LogProbabilities(0.1, 0.2, 0.3, 0.4);
        // Ascending cumulative probabilities 0.1, 0.3, 0.6, 1.0: those <= 1 - 0.5 go.
        var result = Run(new TopPProcessor(0.5), scores);
        Assert.Equal([float.NegativeInfinity, float.NegativeInfinity, scores[2], scores[3]], result);
        // A tiny top_p still keeps the most likely token.
        Assert.Equal([float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity, scores[3]], Run(new TopPProcessor(0.01), scores));
    }

    [Fact]
    public void MinPDropsTokensBelowAFractionOfTheTopProbability()
    {
        var scores = LogProbabilities(0.1, 0.2, 0.3, 0.4);
        // Threshold 0.6 × 0.4 = 0.24.
        Assert.Equal([float.NegativeInfinity, float.NegativeInfinity, scores[2], scores[3]], Run(new MinPProcessor(0.6), scores));
        Assert.Equal([float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity, scores[3]], Run(new MinPProcessor(1.0), scores));
    }

    [Fact]
    public void TemperatureDividesScores() =>
        Assert.Equal([2f, -4f, 1f], Run(new TemperatureProcessor(0.5), [1, -2, 0.5f]));

    [Fact]
    public void RepetitionPenaltyAppliesToPresentTokensButNotPadding()
    {
        // Tokens 0 and 1 are present (token 1 twice); token 2 only appears as padding.
        var result = Run(new RepetitionPenaltyProcessor(2.0), [2, -2, 1, 0.5f], tokens: [2, 0, 1, 1], mask: [0, 1, 1, 1]);
        Assert.Equal([1f, -4f, 1f, 0.5f], result);
    }

    [Fact]
    public void GreedyUsesOnlyTheRepetitionPenaltyAndSamplingFollowsTransformersOrder()
    {
        var greedy = new GenerationConfig { RepetitionPenalty = 1.3, Temperature = 0.7, TopP = 0.9 };
        Assert.Equal([typeof(RepetitionPenaltyProcessor)], LogitsProcessors.For(greedy).Select(p => p.GetType()));
        var sampling = greedy with { DoSample = true, MinP = 0.05 };
        Assert.Equal([typeof(RepetitionPenaltyProcessor), typeof(TemperatureProcessor), typeof(TopKProcessor), typeof(TopPProcessor), typeof(MinPProcessor)],
            LogitsProcessors.For(sampling).Select(p => p.GetType()));
        Assert.Equal([typeof(TopKProcessor)], LogitsProcessors.For(new GenerationConfig { DoSample = true }).Select(p => p.GetType()));
    }

    [Fact]
    public void GenerationConfigReadsGenerationConfigJsonAndValidates()
    {
        var config = GenerationConfig.FromPretrained(Path.Combine(RepoPaths.Models, "stories260K"));
        Assert.Equal([2L], config.EosTokenIds);
        Assert.Equal(1L, config.BosTokenId);
        Assert.False(config.DoSample);
        Assert.Equal(20 - 5, config.NewTokenBudget(5));

        var directory = RepoPaths.NewTempDirectory();
        try
        {
            var path = Path.Combine(directory, GenerationConfig.FileName);
            File.WriteAllText(path, JsonSerializer.Serialize(new
            {
                do_sample = true, temperature = 0.8, top_k = 0, top_p = 0.95, min_p = 0.1, repetition_penalty = 1.1,
                max_new_tokens = 7, eos_token_id = new[] { 5, 6 }, stop_strings = "###",
            }));
            var read = GenerationConfig.FromFile(path);
            Assert.True(read.DoSample);
            Assert.Equal((0.8, 0, 0.95, 0.1, 1.1, 7), (read.Temperature, read.TopK, read.TopP, read.MinP, read.RepetitionPenalty, read.MaxNewTokens));
            Assert.Equal([5L, 6L], read.EosTokenIds);
            Assert.Equal(["###"], read.StopStrings);
            Assert.Throws<ArgumentException>(() => (read with { TopP = 0 }).Validate());
            Assert.Throws<ArgumentException>(() => (read with { Temperature = 0 }).Validate());
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }

    [Fact]
    public void AlpacaTemplateReproducesTheDollyPrompts()
    {
        var lines = File.ReadAllLines(Path.Combine(RepoPaths.Data, "dolly_subset", "dolly_alpaca_format.jsonl"));
        var withInput = 0;
        foreach (var line in lines)
        {
            var prompt = JsonDocument.Parse(line).RootElement.GetProperty("prompt").GetString()!;
            var instruction = Between(prompt, "### Instruction:\n", "\n\n### ");
            var input = prompt.Contains("### Input:\n") ? Between(prompt, "### Input:\n", "\n\n### Response:") : null;
            withInput += input is null ? 0 : 1;
            Assert.Equal(prompt, AlpacaTemplate.Format(instruction, input));
        }
        Assert.Equal(151, lines.Length);
        Assert.Equal(47, withInput);
    }

    private static string Between(string text, string start, string end)
    {
        var from = text.IndexOf(start, StringComparison.Ordinal) + start.Length;
        return text[from..text.IndexOf(end, from, StringComparison.Ordinal)];
    }
}
