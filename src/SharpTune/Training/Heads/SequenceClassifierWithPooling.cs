using System.Text.Json.Nodes;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Training.Heads;

/// <summary>
/// A classification/regression head on any encoder: pooling (<see cref="PoolingStrategy"/>) → dropout → linear layer,
/// with transformers' losses by <c>problem_type</c> (single-label cross-entropy, multi-label/binary BCE with logits,
/// regression MSE). The encoder keeps its checkpoint names under its base-model prefix ("bert.…"), so a pretrained
/// encoder or task checkpoint loads into it and it saves as a loadable folder (config records the pooling).
/// </summary>
public sealed class SequenceClassifierWithPooling : PreTrainedModel
{
    public const string PoolingConfigKey = "sharptune_pooling";

    private readonly PreTrainedModel _encoder;
    private readonly Pooling pooling;
    private readonly Dropout dropout;
    private readonly Linear classifier;

    /// <param name="config">The encoder's config with the head's settings: <c>num_labels</c>/<c>id2label</c>,
    /// <c>problem_type</c>, and <see cref="PoolingConfigKey"/>.</param>
    public SequenceClassifierWithPooling(PretrainedConfig config) : base(nameof(SequenceClassifierWithPooling), config)
    {
        _encoder = AutoModel.FromConfig(config, ModelTask.Base);
        var prefix = _encoder.BaseModelPrefix.Length > 0 ? _encoder.BaseModelPrefix : "encoder";
        var hidden = config.Require<long>("hidden_size", "d_model", "n_embd", "dim");
        pooling = new Pooling(Pooling.Parse(config.Get(PoolingConfigKey, "cls")), hidden);
        dropout = nn.Dropout(config.Get<double?>("classifier_dropout", null) ?? config.Get("hidden_dropout_prob", 0.1));
        classifier = nn.Linear(pooling.OutputSize, config.NumLabels);
        register_module(prefix, _encoder);
        register_module("pooling", pooling);
        register_module("dropout", dropout);
        register_module("classifier", classifier);
        BaseModelPrefix = prefix;
    }

    public override string BaseModelPrefix { get; }

    public PoolingStrategy Strategy => pooling.Strategy;

    /// <summary>The wrapped base encoder.</summary>
    public PreTrainedModel Encoder => _encoder;

    /// <summary>Builds the head on a pretrained encoder folder (any of its task checkpoints) and loads the weights;
    /// the head is initialised fresh as transformers does. A folder saved from this class reloads its own head.</summary>
    public static SequenceClassifierWithPooling FromPretrained(string directory, PoolingStrategy? pooling = null, IReadOnlyList<string>? labels = null,
        string? problemType = null, double? dropoutRate = null)
    {
        var config = PretrainedConfig.FromDirectory(directory);
        if (pooling is { } p)
            config.Set(PoolingConfigKey, Pooling.Name(p));
        if (labels is not null)
            config.SetLabels(labels);
        if (problemType is not null)
            config.Set("problem_type", problemType);
        if (dropoutRate is { } rate)
            config.Set("classifier_dropout", rate);
        config.Set("architectures", new JsonArray(nameof(SequenceClassifierWithPooling)));
        var model = new SequenceClassifierWithPooling(config);
        try
        {
            using var checkpoint = Checkpoint.Open(directory);
            model.LoadWeights(checkpoint);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        using var encoded = _encoder.Forward(inputs with { Labels = null, OutputHiddenStates = inputs.OutputHiddenStates || pooling.NeedsAllHiddenStates });
        var pooled = pooling.Forward(encoded.LastHiddenState, inputs.AttentionMask, encoded.HiddenStates);
        var logits = classifier.forward(dropout.forward(pooled));
        var loss = inputs.Labels is null ? null : SequenceClassificationLoss.Compute(logits, inputs.Labels, Config.NumLabels, Config.ProblemType);
        return new ModelOutput
        {
            Logits = logits.MoveToOuterDisposeScope(),
            Loss = loss?.MoveToOuterDisposeScope(),
            LastHiddenState = encoded.LastHiddenState.alias().MoveToOuterDisposeScope(),
            HiddenStates = inputs.OutputHiddenStates ? encoded.HiddenStates?.Select(s => s.alias().MoveToOuterDisposeScope()).ToList() : null,
        };
    }
}
