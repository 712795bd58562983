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
/// regression MSE).
/// <para>A saved folder describes itself: config.json is the encoder's config (model_type, id2label/label2id,
/// problem_type) with <c>architectures</c> = the encoder's sequence-classification class + "WithPooling" (e.g.
/// <c>BertForSequenceClassificationWithPooling</c>, which <see cref="AutoModel"/> builds) and
/// <see cref="PoolingConfigKey"/> = the pooling kind. The encoder keeps its checkpoint names under its base-model
/// prefix ("bert.…"), so transformers' AutoModel loads the encoder from the folder as is; the head's weights are
/// under <c>pooling_head.</c> (<c>pooling_head.classifier.*</c>, and <c>pooling_head.pooling.dense.*</c> /
/// <c>pooling_head.pooling.score.*</c> for attention pooling), so no transformers head silently takes them.</para>
/// </summary>
public sealed class SequenceClassifierWithPooling : PreTrainedModel
{
    public const string PoolingConfigKey = "sharptune_pooling";
    public const string ArchitectureSuffix = "WithPooling";

    private readonly PreTrainedModel _encoder;
    private readonly PoolingHead _head;

    /// <param name="config">The encoder's config with the head's settings: <c>num_labels</c>/<c>id2label</c>,
    /// <c>problem_type</c>, and <see cref="PoolingConfigKey"/> (default cls).</param>
    public SequenceClassifierWithPooling(PretrainedConfig config) : base(ArchitectureFor(config), config)
    {
        _encoder = AutoModel.FromConfig(config, ModelTask.Base);
        var prefix = _encoder.BaseModelPrefix.Length > 0 ? _encoder.BaseModelPrefix : "encoder";
        var hidden = config.Require<long>("hidden_size", "d_model", "n_embd", "dim");
        var dropout = config.Get<double?>("classifier_dropout", null) ?? config.Get("hidden_dropout_prob", 0.1);
        _head = new PoolingHead(Pooling.Parse(config.Get(PoolingConfigKey, "cls")), hidden, dropout, config.NumLabels);
        register_module(prefix, _encoder);
        register_module("pooling_head", _head);
        BaseModelPrefix = prefix;
    }

    public override string BaseModelPrefix { get; }

    public PoolingStrategy Strategy => _head.Pooling.Strategy;

    /// <summary>The wrapped base encoder.</summary>
    public PreTrainedModel Encoder => _encoder;

    /// <summary>One registration per encoder family that has a sequence-classification class in SharpTune, named
    /// after it (BertForSequenceClassification → BertForSequenceClassificationWithPooling).</summary>
    internal static IEnumerable<ModelRegistration> Registrations(IEnumerable<ModelRegistration> native) =>
        native.Where(r => r.Task == ModelTask.SequenceClassification)
            .Select(r => new ModelRegistration(r.Architecture + ArchitectureSuffix, r.ModelType, ModelTask.SequenceClassification,
                config => new SequenceClassifierWithPooling(config)))
            .ToList();

    private static string ArchitectureFor(PretrainedConfig config) =>
        AutoModel.Registrations.FirstOrDefault(r => r.ModelType == config.ModelType && r.Architecture.EndsWith(ArchitectureSuffix, StringComparison.Ordinal))?.Architecture
        ?? throw new NotSupportedException($"{config.SourcePath ?? PretrainedConfig.FileName}: model_type '{config.ModelType}' has no pooling head in SharpTune");

    /// <summary>Builds the head on a pretrained encoder folder (any of its task checkpoints) and loads the weights;
    /// the head is initialised fresh as transformers does. A folder saved from this class reloads its own head
    /// (and its pooling, unless <paramref name="pooling"/> overrides it).</summary>
    public static SequenceClassifierWithPooling FromPretrained(string directory, PoolingStrategy? pooling = null, IReadOnlyList<string>? labels = null,
        string? problemType = null, double? dropoutRate = null)
    {
        directory = Hub.PretrainedPath.Resolve(directory);
        var config = PretrainedConfig.FromDirectory(directory);
        if (pooling is { } p)
            config.Set(PoolingConfigKey, Pooling.Name(p));
        if (labels is not null)
            config.SetLabels(labels);
        if (problemType is not null)
            config.Set("problem_type", problemType);
        if (dropoutRate is { } rate)
            config.Set("classifier_dropout", rate);
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
        using var encoded = _encoder.Forward(inputs with { Labels = null, OutputHiddenStates = inputs.OutputHiddenStates || _head.Pooling.NeedsAllHiddenStates });
        var logits = _head.Forward(encoded.LastHiddenState, inputs.AttentionMask, encoded.HiddenStates);
        var loss = inputs.Labels is null ? null : SequenceClassificationLoss.Compute(logits, inputs.Labels, Config.NumLabels, Config.ProblemType);
        return new ModelOutput
        {
            Logits = logits.MoveToOuterDisposeScope(),
            Loss = loss?.MoveToOuterDisposeScope(),
            LastHiddenState = encoded.LastHiddenState.alias().MoveToOuterDisposeScope(),
            HiddenStates = inputs.OutputHiddenStates ? encoded.HiddenStates?.Select(s => s.alias().MoveToOuterDisposeScope()).ToList() : null,
        };
    }

    /// <summary>Pooling → dropout → linear: the trained part a pooling-head folder adds to its encoder.</summary>
    private sealed class PoolingHead : nn.Module
    {
        private readonly Pooling pooling;
        private readonly Dropout dropout;
        private readonly Linear classifier;

        public PoolingHead(PoolingStrategy strategy, long hiddenSize, double dropoutRate, int labels) : base(nameof(PoolingHead))
        {
            pooling = new Pooling(strategy, hiddenSize);
            dropout = nn.Dropout(dropoutRate);
            classifier = nn.Linear(pooling.OutputSize, labels);
            RegisterComponents();
        }

        public Pooling Pooling => pooling;

        public Tensor Forward(Tensor lastHiddenState, Tensor? attentionMask, IReadOnlyList<Tensor>? hiddenStates)
        {
            // Intermediates belong to the caller's dispose scope (eval-mode dropout may return its input).
            return classifier.forward(dropout.forward(pooling.Forward(lastHiddenState, attentionMask, hiddenStates)));
        }
    }
}
