using System.Text.Json;
using SharpTune.Generation;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tests.Support;

namespace SharpTune.Tests.Generation;

public class GenerationTests
{
    private static readonly string Stories = Path.Combine(RepoPaths.Models, "stories260K");

    internal sealed record StoriesReference(string Prompt, long[] PromptIds, long[] GreedyIds, string GreedyText);

    internal static IReadOnlyList<StoriesReference> LoadStoriesReference()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(RepoPaths.Fixture("real", "stories260K", "reference.json")));
        return json.RootElement.GetProperty("generations").EnumerateArray().Select(g => new StoriesReference(
            g.GetProperty("prompt").GetString()!,
            g.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt64()).ToArray(),
            g.GetProperty("greedy_ids").EnumerateArray().Select(e => e.GetInt64()).ToArray(),
            g.GetProperty("greedy_text").GetString()!)).ToList();
    }

    private static CausalLMModel Load(string directory) =>
        Assert.IsAssignableFrom<CausalLMModel>(AutoModel.FromPretrained(directory, ModelTask.CausalLM));

    private static Llama2cVocabulary StoriesVocabulary() => Llama2cVocabulary.Load(Path.Combine(Stories, "llama2c", "tok512.bin"));

    [Theory]
    [InlineData("llama-lm")]
    [InlineData("qwen2-lm")]
    [InlineData("phi-lm")]
    [InlineData("gpt2-lm")]
    [InlineData("gptneox-lm")]
    public void GreedyReproducesTransformersGenerate(string fixture)
    {
        var directory = RepoPaths.Fixture("models", fixture);
        using var model = Load(directory);
        long[] prompt, expected;
        using (var reference = SafeTensorsFile.Open(Path.Combine(directory, "reference.safetensors")))
        using (var promptTensor = reference.Load("generate_prompt"))
        using (var expectedTensor = reference.Load("generate_greedy"))
        {
            prompt = promptTensor.data<long>().ToArray();
            expected = expectedTensor.data<long>().ToArray();
        }
        // The fixtures were generated with max_new_tokens=20 (the Llama one stops early at its EOS id).
        var config = GenerationConfig.FromPretrained(directory) with { MaxNewTokens = 20 };
        var result = new TextGenerator(model).Generate([prompt], config);
        Assert.Equal(expected, result.Sequences[0]);
        Assert.Equal(expected.Length - prompt.Length == 20 ? FinishReason.Length : FinishReason.EndOfSequence, result.FinishReasons[0]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Stories260KReproducesTheReferenceGreedyGenerations(bool fromLlama2cImport)
    {
        var directory = fromLlama2cImport ? Llama2cImporterTests.Import() : Stories;
        try
        {
            using var model = Load(directory);
            var vocabulary = StoriesVocabulary();
            var generator = new TextGenerator(model, vocabulary.Decode);
            foreach (var reference in LoadStoriesReference())
            {
                var config = GenerationConfig.FromPretrained(directory) with { MaxNewTokens = reference.GreedyIds.Length - reference.PromptIds.Length };
                var result = generator.Generate([reference.PromptIds], config);
                Assert.Equal(reference.GreedyIds, result.Sequences[0]);
                // The reference text is llama2.c's rendering of all ids (BOS as "\n<s>\n").
                Assert.Equal(reference.GreedyText, vocabulary.Decode(result.Sequences[0]));
            }
        }
        finally
        {
            if (fromLlama2cImport)
                Directory.Delete(directory, true);
        }
    }

    [Fact]
    public void Stories260KTokenizerEncodesThePromptsAndDecodesTheGenerations()
    {
        var tokenizer = PromptTokenizer.FromPretrained(Stories);
        using var model = Load(Stories);
        var generator = new TextGenerator(model, tokenizer.Decode);
        foreach (var reference in LoadStoriesReference())
        {
            Assert.Equal(reference.PromptIds, tokenizer.Encode(reference.Prompt));
            var result = generator.Generate([tokenizer.Encode(reference.Prompt)], GenerationConfig.FromPretrained(Stories) with { MaxNewTokens = 20 });
            Assert.Equal(reference.GreedyIds.Take(result.Sequences[0].Count), result.Sequences[0]);
            // transformers' decode skips the special BOS that llama2.c prints as "\n<s>\n".
            Assert.StartsWith(tokenizer.Decode(result.Sequences[0]), reference.GreedyText["\n<s>\n".Length..]);
        }
    }

    [Fact]
    public void BatchedMixedLengthPromptsMatchOneByOne()
    {
        using var model = Load(Stories);
        var generator = new TextGenerator(model);
        var references = LoadStoriesReference();
        var config = GenerationConfig.FromPretrained(Stories) with { MaxNewTokens = 40 };
        var prompts = references.Select(r => (IReadOnlyList<long>)r.PromptIds).ToList();
        Assert.True(prompts.Select(p => p.Count).Distinct().Count() > 2, "the prompts must have different lengths");
        var batched = generator.Generate(prompts, config);
        for (var i = 0; i < prompts.Count; i++)
        {
            Assert.Equal(generator.Generate([prompts[i]], config).Sequences[0], batched.Sequences[i]);
            Assert.Equal(references[i].GreedyIds.Take(prompts[i].Count + 40), batched.Sequences[i]);
        }
    }

    [Theory]
    [InlineData("llama-lm")]
    [InlineData("qwen2-lm")]
    [InlineData("phi-lm")]
    [InlineData("gpt2-lm")]
    [InlineData("gptneox-lm")]
    public void EveryDecoderGivesTheSameIdsBatchedWithLeftPaddingAsOneByOne(string fixture)
    {
        using var model = Load(RepoPaths.Fixture("models", fixture));
        var generator = new TextGenerator(model);
        IReadOnlyList<long>[] prompts = [[5, 17, 42, 99, 7], [301], [12, 900, 4, 77, 31, 8, 650, 3, 19]];
        var config = new GenerationConfig { MaxNewTokens = 12 };
        var batched = generator.Generate(prompts, config);
        for (var i = 0; i < prompts.Length; i++)
            Assert.Equal(generator.Generate([prompts[i]], config).Sequences[0], batched.Sequences[i]);
    }

    [Fact]
    public void BatchedSamplingWithASeedIsReproducibleAndMatchesOneByOne()
    {
        using var model = Load(Stories);
        var generator = new TextGenerator(model);
        var prompts = LoadStoriesReference().Select(r => (IReadOnlyList<long>)r.PromptIds).ToList();
        var config = GenerationConfig.FromPretrained(Stories) with
        {
            MaxNewTokens = 30, DoSample = true, Temperature = 1.2, TopK = 40, TopP = 0.95, MinP = 0.02, RepetitionPenalty = 1.1, Seed = 7,
        };
        var first = generator.Generate(prompts, config);
        var again = generator.Generate(prompts, config);
        Assert.Equal(first.Sequences, again.Sequences);
        var otherSeed = generator.Generate(prompts, config with { Seed = 8 });
        Assert.NotEqual(first.Sequences, otherSeed.Sequences);
        // Sampling from the single most likely token is greedy decoding.
        var greedy = generator.Generate(prompts, config with { DoSample = false, RepetitionPenalty = 1.0 });
        Assert.Equal(greedy.Sequences, generator.Generate(prompts, config with { TopK = 1, RepetitionPenalty = 1.0 }).Sequences);
    }

    [Fact]
    public void StopsAtStopStringsAndStreamsTheGeneratedText()
    {
        using var model = Load(Stories);
        var vocabulary = StoriesVocabulary();
        var generator = new TextGenerator(model, vocabulary.Decode);
        var reference = LoadStoriesReference()[1];
        var config = GenerationConfig.FromPretrained(Stories) with { MaxNewTokens = 60, StopStrings = ["Lily."] };
        var streamed = new List<string>();
        var result = generator.Generate([reference.PromptIds], config, step => streamed.Add(step.Text));
        var text = vocabulary.Decode(result.Generated(0));
        Assert.Equal(FinishReason.StopString, result.FinishReasons[0]);
        Assert.Equal(", there was a little girl named Lily.", text);
        Assert.Equal(reference.GreedyIds.Take(result.Sequences[0].Count), result.Sequences[0]);
        Assert.Equal(text, string.Concat(streamed));
    }

    [Fact]
    public async Task StreamAsyncYieldsTheGeneratedTextPieceByPiece()
    {
        using var model = Load(Stories);
        var vocabulary = StoriesVocabulary();
        var generator = new TextGenerator(model, vocabulary.Decode);
        var reference = LoadStoriesReference()[0];
        var config = GenerationConfig.FromPretrained(Stories) with { MaxNewTokens = 25 };
        var pieces = new List<string>();
        await foreach (var piece in generator.StreamAsync(reference.PromptIds, config))
            pieces.Add(piece);
        Assert.True(pieces.Count > 10);
        Assert.Equal(vocabulary.Decode(reference.GreedyIds.Skip(1).Take(25)), string.Concat(pieces));
    }

    [Fact]
    public void RepeatedGenerationLeaksNoTensors()
    {
        using var model = Load(RepoPaths.Fixture("models", "llama-lm"));
        var generator = new TextGenerator(model);
        IReadOnlyList<long>[] prompts = [[5, 17, 42, 99, 7], [301, 4]];
        var config = new GenerationConfig { MaxNewTokens = 10, DoSample = true, TopP = 0.9, MinP = 0.01, RepetitionPenalty = 1.2, Seed = 1 };
        long Run()
        {
            generator.Generate(prompts, config);
            generator.Generate(prompts, config with { DoSample = false });
            return TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        }
        var afterFirst = Run();
        for (var i = 0; i < 3; i++)
            Run();
        Assert.Equal(afterFirst, Run());
    }

    [Fact]
    public void RejectsGenerationsLongerThanTheModelsPositions()
    {
        using var model = Load(Stories);
        var error = Assert.Throws<ArgumentException>(() =>
            new TextGenerator(model).Generate([[1L]], new GenerationConfig { MaxNewTokens = 600 }));
        Assert.Contains("512", error.Message);
    }
}
