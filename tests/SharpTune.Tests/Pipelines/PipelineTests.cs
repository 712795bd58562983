using SharpTune.Generation;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Pipelines;
using SharpTune.Tests.Support;
using SharpTune.Tokenizers;
using SharpTune.Training.Heads;
using static TorchSharp.torch;

namespace SharpTune.Tests.Pipelines;

/// <summary>The inference pipelines against the transformers reference outputs of the fixture models, and on mini-bert.</summary>
public sealed class PipelineTests : IDisposable
{
    private const double Tolerance = 1e-4; // the fixtures' forward-parity tolerance, carried through softmax/pooling

    private static readonly Dictionary<int, string> EncoderSpecials = new() { [0] = "[PAD]", [733] = "[MASK]" };
    private readonly List<string> _directories = [];

    public void Dispose()
    {
        foreach (var directory in _directories)
            Directory.Delete(directory, recursive: true);
    }

    private string Tokenizer(Dictionary<int, string> specials)
    {
        var directory = IdTokenizer.Write(1000, specials);
        _directories.Add(directory);
        return directory;
    }

    private static string Fixture(string name) => RepoPaths.Fixture("models", name);

    /// <summary>Reference tensors as arrays: the two input rows (without padding) and the named output.</summary>
    private static (long[][] Rows, float[] Values, long[] Shape) Reference(string fixture, string output)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Fixture(fixture), "reference.safetensors"));
        using var ids = file.Load("input_ids");
        using var mask = file.Load("attention_mask");
        using var values = file.Load(output);
        var width = (int)ids.shape[1];
        var flatIds = ids.data<long>().ToArray();
        var flatMask = mask.data<long>().ToArray();
        var rows = Enumerable.Range(0, (int)ids.shape[0])
            .Select(r => flatIds.Skip(r * width).Take(width).Where((_, t) => flatMask[r * width + t] == 1).ToArray()).ToArray();
        return (rows, values.to(ScalarType.Float32).data<float>().ToArray(), values.shape);
    }

    private static double[] Softmax(IEnumerable<float> logits)
    {
        var values = logits.Select(v => (double)v).ToArray();
        var max = values.Max();
        var exp = values.Select(v => Math.Exp(v - max)).ToArray();
        return exp.Select(e => e / exp.Sum()).ToArray();
    }

    [Fact]
    public void TextClassificationScoresAreTheSoftmaxOfTheReferenceLogits()
    {
        var (rows, logits, _) = Reference("bert-seqcls", "logits");
        using var classifier = (TextClassificationPipeline)Pipeline.Create(Pipeline.TextClassification, Fixture("bert-seqcls"),
            new PipelineOptions { TokenizerPath = Tokenizer(EncoderSpecials), BatchSize = 2 });
        var texts = rows.Select(r => IdTokenizer.Text(r, EncoderSpecials)).ToList();

        var all = classifier.Predict(texts, topK: null);
        var best = classifier.Predict(texts);
        for (var r = 0; r < rows.Length; r++)
        {
            var expected = Softmax(logits.Skip(r * 2).Take(2));
            Assert.Equal(2, all[r].Count);
            foreach (var score in all[r])
                Assert.InRange(score.Score, expected[int.Parse(score.Label["LABEL_".Length..])] - Tolerance, expected[int.Parse(score.Label["LABEL_".Length..])] + Tolerance);
            Assert.True(all[r][0].Score >= all[r][1].Score);
            var single = Assert.Single(best[r]);
            Assert.Equal($"LABEL_{(expected[1] > expected[0] ? 1 : 0)}", single.Label);
        }
        // One at a time (no padding in the batch) gives the same scores.
        Assert.Equal(all[1][0].Score, classifier.Predict(texts[1], topK: null)[0].Score, Tolerance);
    }

    [Fact]
    public void TextClassificationUsesId2LabelAndSigmoidForMultiLabelModels()
    {
        var (rows, logits, _) = Reference("bert-seqcls", "logits");
        var model = RepoPaths.NewTempDirectory("sharptune-multilabel");
        _directories.Add(model);
        File.Copy(Path.Combine(Fixture("bert-seqcls"), "model.safetensors"), Path.Combine(model, "model.safetensors"));
        var config = PretrainedConfig.FromDirectory(Fixture("bert-seqcls"));
        config.SetLabels(["sports", "politics"]);
        config.Set("problem_type", "multi_label_classification");
        config.Save(model);

        using var classifier = TextClassificationPipeline.FromPretrained(model, new PipelineOptions { TokenizerPath = Tokenizer(EncoderSpecials) });
        Assert.Equal(ClassificationFunction.Sigmoid, classifier.Function);
        var scores = classifier.Predict(IdTokenizer.Text(rows[0], EncoderSpecials), topK: null).ToDictionary(s => s.Label, s => s.Score);
        Assert.Equal(1 / (1 + Math.Exp(-logits[0])), scores["sports"], Tolerance);
        Assert.Equal(1 / (1 + Math.Exp(-logits[1])), scores["politics"], Tolerance);
    }

    [Fact]
    public void TextClassificationRefusesACheckpointWithoutAClassificationHead()
    {
        var error = Assert.Throws<InvalidDataException>(() => Pipeline.Create(Pipeline.TextClassification, Fixture("bert-mlm"),
            new PipelineOptions { TokenizerPath = Tokenizer(EncoderSpecials) }));
        Assert.Contains("no trained text-classification head", error.Message);
        Assert.Contains("classifier.weight", error.Message);
    }

    [Fact]
    public void FillMaskReturnsTheTopKOfTheReferenceLogits()
    {
        var (rows, logits, shape) = Reference("bert-mlm", "logits");
        using var fill = (FillMaskPipeline)Pipeline.Create(Pipeline.FillMask, Fixture("bert-mlm"), new PipelineOptions { TokenizerPath = Tokenizer(EncoderSpecials) });
        // Token 733 of the first reference row is named [MASK] by the test tokenizer, so the model sees the reference ids.
        var text = IdTokenizer.Text(rows[0], EncoderSpecials);
        Assert.Contains("[MASK]", text);
        var position = Array.IndexOf(rows[0], 733L);
        var vocab = (int)shape[2];
        var probabilities = Softmax(logits.Skip(position * vocab).Take(vocab));
        var expected = Enumerable.Range(0, vocab).OrderByDescending(i => probabilities[i]).Take(5).ToArray();

        var prediction = Assert.Single(fill.Fill(text));
        Assert.Equal(position, prediction.Position);
        Assert.Equal(expected.Select(i => (long)i), prediction.Candidates.Select(c => c.Token));
        for (var i = 0; i < 5; i++)
        {
            var candidate = prediction.Candidates[i];
            Assert.Equal(probabilities[expected[i]], candidate.Score, Tolerance);
            Assert.Equal(IdTokenizer.Token(expected[i], EncoderSpecials), candidate.TokenStr);
            Assert.Equal(IdTokenizer.Text(rows[0].Select((id, t) => t == position ? expected[i] : id), EncoderSpecials), candidate.Sequence);
        }
        Assert.Equal(3, fill.Fill([text], topK: 3)[0][0].Candidates.Count);
    }

    [Fact]
    public void FillMaskNamesTheInputWithoutAMaskToken()
    {
        using var fill = FillMaskPipeline.FromPretrained(Fixture("bert-mlm"), new PipelineOptions { TokenizerPath = Tokenizer(EncoderSpecials) });
        var error = Assert.Throws<ArgumentException>(() => fill.Fill(["t5 [MASK] t6", "t7 t8 t9"]));
        Assert.Contains("input 2 (\"t7 t8 t9\") has no mask token [MASK]", error.Message);
    }

    [Fact]
    public void FeatureExtractionReturnsTheReferenceLastHiddenStateAndItsPooling()
    {
        var (rows, hidden, shape) = Reference("bert-mlm", "hidden_states_last");
        var (length, width) = ((int)shape[1], (int)shape[2]);
        using var extractor = (FeatureExtractionPipeline)Pipeline.Create(Pipeline.FeatureExtraction, Fixture("bert-mlm"),
            new PipelineOptions { TokenizerPath = Tokenizer(EncoderSpecials) });
        var texts = rows.Select(r => IdTokenizer.Text(r, EncoderSpecials)).ToList();

        var tokens = extractor.TokenEmbeddings(texts);
        var mean = extractor.SentenceEmbeddings(texts);
        var cls = extractor.SentenceEmbeddings(texts, PoolingStrategy.Cls, normalize: true);
        for (var r = 0; r < rows.Length; r++)
        {
            Assert.Equal(rows[r].Length, tokens[r].Vectors.Length);
            Assert.Equal(texts[r].Split(' '), tokens[r].Tokens);
            float Expected(int t, int h) => hidden[(r * length + t) * width + h];
            for (var t = 0; t < rows[r].Length; t++)
                for (var h = 0; h < width; h++)
                    Assert.Equal(Expected(t, h), tokens[r].Vectors[t][h], Tolerance);
            for (var h = 0; h < width; h++)
                Assert.Equal(Enumerable.Range(0, rows[r].Length).Average(t => Expected(t, h)), mean[r][h], Tolerance);
            var norm = Math.Sqrt(Enumerable.Range(0, width).Sum(h => Expected(0, h) * (double)Expected(0, h)));
            for (var h = 0; h < width; h++)
                Assert.Equal(Expected(0, h) / norm, cls[r][h], Tolerance);
        }
        Assert.Throws<ArgumentException>(() => extractor.SentenceEmbeddings(texts, PoolingStrategy.Attention));
    }

    [Fact]
    public void TextGenerationReproducesTheReferenceGreedyGeneration()
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Fixture("llama-lm"), "reference.safetensors"));
        using var promptTensor = file.Load("generate_prompt");
        using var expectedTensor = file.Load("generate_greedy");
        var prompt = promptTensor.data<long>().ToArray();
        var expected = expectedTensor.data<long>().ToArray();
        var specials = new Dictionary<int, string> { [0] = "<unk>", [1] = "<s>", [2] = "</s>" };
        using var generator = (TextGenerationPipeline)Pipeline.Create(Pipeline.TextGeneration, Fixture("llama-lm"),
            new PipelineOptions { TokenizerPath = Tokenizer(specials), BatchSize = 2 });
        var text = IdTokenizer.Text(prompt, specials);
        // The fixture was generated with max_new_tokens=20 (it stops earlier at the EOS id).
        var config = generator.GenerationConfig with { MaxNewTokens = 20 };

        var result = generator.Generate(text, config);
        Assert.Equal(expected.Skip(prompt.Length), result.TokenIds);
        Assert.Equal(FinishReason.EndOfSequence, result.FinishReason);
        var continuation = " " + IdTokenizer.Text(expected.Skip(prompt.Length).SkipLast(1)); // the EOS is a special token
        Assert.Equal(text + continuation, result.Text);
        Assert.Equal(continuation, generator.Generate(text, config, returnFullText: false).Text);

        // In a batch with a longer prompt (left padding), the same tokens.
        var batch = generator.Generate([IdTokenizer.Text([9, 10, 11, 12, 13, 14, 15]), text], config);
        Assert.Equal(result.TokenIds, batch[1].TokenIds);
    }

    [Fact]
    public void MiniBertFillsTheCapitalOfFranceInTheOrderOfItsOwnLogits()
    {
        var directory = Path.Combine(RepoPaths.Models, "mini-bert");
        const string text = "the capital of france is [MASK].";
        using var fill = (FillMaskPipeline)Pipeline.Create(Pipeline.FillMask, directory, new PipelineOptions { DType = ScalarType.Float32 });
        var candidates = Assert.Single(fill.Fill(text, topK: 10)).Candidates;

        using var model = AutoModel.FromPretrained(directory, ModelTask.MaskedLM, dtype: ScalarType.Float32);
        var tokenizer = AutoTokenizer.FromPretrained(directory);
        var ids = tokenizer.EncodeToIds(text).Select(id => (long)id).ToArray();
        var position = Array.IndexOf(ids, (long)tokenizer.TokenToId("[MASK]")!.Value);
        using var scope = NewDisposeScope();
        using var output = model.Forward(new ModelInputs(tensor(ids, [1, ids.Length])));
        var probabilities = output.Logits![0, position].softmax(-1);
        var expected = probabilities.topk(10).indexes.data<long>().ToArray();
        Assert.Equal(expected, candidates.Select(c => c.Token));
        Assert.Equal(probabilities[expected[0]].item<float>(), candidates[0].Score, 1e-5);
        Assert.All(candidates, c => Assert.Equal(text.Replace("[MASK]", c.TokenStr), c.Sequence.Replace(" .", ".")));
        // A 4-layer model trained for minutes does not know capitals, but its fills are whole words that fit the slot...
        Assert.All(candidates, c => Assert.Matches("^[a-z]+$", c.TokenStr));
        // ...and from raw text it finds the place one goes to (MiniBertTests checks the same from token ids).
        Assert.Contains("park", fill.Fill("she went to the [MASK].")[0].Candidates.Select(c => c.TokenStr));
    }

    [Fact]
    public void CreateRejectsAnUnknownTask()
    {
        var error = Assert.Throws<ArgumentException>(() => Pipeline.Create("summarization", Fixture("bert-mlm")));
        Assert.Contains("text-classification, feature-extraction, fill-mask, text-generation", error.Message);
    }
}
