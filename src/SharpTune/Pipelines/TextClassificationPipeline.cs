using SharpTune.Models;
using SharpTune.Tokenizers;
using static TorchSharp.torch;

namespace SharpTune.Pipelines;

/// <summary>One label of a classification and its score.</summary>
public sealed record LabelScore(string Label, double Score);

/// <summary>How logits become scores (transformers' <c>function_to_apply</c>).</summary>
public enum ClassificationFunction
{
    /// <summary>Probabilities over mutually exclusive labels.</summary>
    Softmax,
    /// <summary>An independent probability per label (multi-label, or a single output).</summary>
    Sigmoid,
    /// <summary>The raw outputs (regression).</summary>
    None,
}

/// <summary>
/// <c>text-classification</c>: labels (config.json's id2label) with scores for each text, best first. Scores are a
/// softmax over the logits, or a sigmoid for <c>multi_label_classification</c> models and single-output models, or
/// the raw values for <c>regression</c> — as transformers decides.
/// </summary>
public sealed class TextClassificationPipeline : Pipeline
{
    private TextClassificationPipeline(string modelDirectory, PreTrainedModel model, Tokenizer tokenizer, PipelineOptions options)
        : base(TextClassification, modelDirectory, model, tokenizer, options)
    {
        var id2Label = model.Config.Id2Label;
        Labels = Enumerable.Range(0, model.Config.NumLabels).Select(i => id2Label.GetValueOrDefault(i, $"LABEL_{i}")).ToList();
        Function = model.Config.ProblemType switch
        {
            "multi_label_classification" => ClassificationFunction.Sigmoid,
            "regression" => ClassificationFunction.None,
            _ => Labels.Count == 1 ? ClassificationFunction.Sigmoid : ClassificationFunction.Softmax,
        };
    }

    public static TextClassificationPipeline FromPretrained(string modelDirectory, PipelineOptions? options = null)
    {
        (modelDirectory, options) = ResolvePaths(modelDirectory, options);
        var tokenizer = AutoTokenizer.FromPretrained(options.TokenizerPath ?? modelDirectory);
        var model = LoadModel(TextClassification, modelDirectory, ModelTask.SequenceClassification, options, requireTrainedHead: true);
        return new TextClassificationPipeline(modelDirectory, model, tokenizer, options);
    }

    /// <summary>Label names by class id.</summary>
    public IReadOnlyList<string> Labels { get; }

    public ClassificationFunction Function { get; }

    /// <summary>Classifies one text; see <see cref="Predict(IReadOnlyList{string}, int?, CancellationToken)"/>.</summary>
    public IReadOnlyList<LabelScore> Predict(string text, int? topK = 1) => Predict([text], topK)[0];

    /// <summary>The <paramref name="topK"/> best labels of each text (default 1, as transformers; null: every label),
    /// highest score first.</summary>
    public IReadOnlyList<IReadOnlyList<LabelScore>> Predict(IReadOnlyList<string> texts, int? topK = 1, CancellationToken cancellation = default)
    {
        if (topK is < 1)
            throw new ArgumentException($"top_k must be at least 1 (got {topK}); use null for every label");
        var results = new IReadOnlyList<LabelScore>[texts.Count];
        RunBatches(Encode(texts), (rows, _, output) =>
        {
            var logits = (output.Logits ?? throw new InvalidOperationException($"{ModelDirectory}: the model returned no logits")).to(ScalarType.Float32);
            var scores = Function switch
            {
                ClassificationFunction.Softmax => logits.softmax(-1),
                ClassificationFunction.Sigmoid => logits.sigmoid(),
                _ => logits,
            };
            var classes = Labels.Count;
            if (scores.shape[^1] != classes)
                throw new InvalidDataException($"{ModelDirectory}: the model outputs {scores.shape[^1]} logits but config.json names {classes} labels (id2label)");
            var values = scores.cpu().data<float>().ToArray();
            for (var r = 0; r < rows.Length; r++)
                results[rows[r]] = Enumerable.Range(0, classes)
                    .Select(k => new LabelScore(Labels[k], values[r * classes + k]))
                    .OrderByDescending(s => s.Score)
                    .Take(topK ?? classes)
                    .ToList();
        }, cancellation);
        return results;
    }
}
