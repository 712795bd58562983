using System.Text.Json.Nodes;
using SharpTune.Models;
using SharpTune.Training.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

/// <summary>A tiny sequence classifier (embeddings → one dense layer → LayerNorm → masked mean → linear head) with
/// transformers-like parameter names, dropout and a CE loss: enough to exercise every part of the Trainer in milliseconds.</summary>
internal sealed class TinyClassifier : PreTrainedModel
{
    private readonly TinyEncoder encoder;
    private readonly Dropout dropout;
    private readonly Linear classifier;

    public TinyClassifier(long seed = 1, double dropoutRate = 0.0) : base(nameof(TinyClassifier), NewConfig())
    {
        using var generator = manual_seed(seed);
        encoder = new TinyEncoder();
        dropout = nn.Dropout(dropoutRate);
        classifier = nn.Linear(Hidden, 2);
        RegisterComponents();
    }

    public const int Vocab = 16;
    public const int Hidden = 8;

    private static PretrainedConfig NewConfig() => new(new JsonObject { ["model_type"] = "tiny", ["pad_token_id"] = 0, ["num_hidden_layers"] = 2 });

    public override string BaseModelPrefix => "encoder";

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var hidden = encoder.forward(inputs.InputIds);
        var mask = (inputs.AttentionMask ?? ones_like(inputs.InputIds)).unsqueeze(-1).to(hidden.dtype);
        var pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1);
        var logits = classifier.forward(dropout.forward(pooled));
        var loss = inputs.Labels is { } labels ? nn.functional.cross_entropy(logits.to(ScalarType.Float32), labels) : null;
        return new ModelOutput
        {
            Logits = logits.MoveToOuterDisposeScope(),
            LastHiddenState = hidden.MoveToOuterDisposeScope(),
            Loss = loss?.MoveToOuterDisposeScope(),
        };
    }

    /// <summary>Copies every parameter, for exact comparisons between runs.</summary>
    public Dictionary<string, float[]> Snapshot() =>
        named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().to(ScalarType.Float32).cpu().data<float>().ToArray());

    /// <summary>Sequences of token ids 1..15 whose label says whether they hold more high (≥ 8) than low tokens.</summary>
    public static List<TrainingExample> Data(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var ids = Enumerable.Range(0, random.Next(3, 9)).Select(_ => (long)random.Next(1, Vocab)).ToArray();
            return new TrainingExample(ids) { Label = ids.Count(t => t >= 8) * 2 > ids.Length ? 1 : 0 };
        }).ToList();
    }

    private sealed class TinyEncoder : nn.Module<Tensor, Tensor>
    {
        private readonly Embedding embeddings;
        private readonly ModuleList<Linear> layer;
        private readonly LayerNorm LayerNorm;

        public TinyEncoder() : base("encoder")
        {
            embeddings = nn.Embedding(Vocab, Hidden);
            layer = nn.ModuleList(nn.Linear(Hidden, Hidden), nn.Linear(Hidden, Hidden));
            LayerNorm = nn.LayerNorm(Hidden);
            RegisterComponents();
        }

        public override Tensor forward(Tensor ids)
        {
            var hidden = embeddings.forward(ids);
            foreach (var dense in layer)
                hidden = nn.functional.gelu(dense.forward(hidden));
            return LayerNorm.forward(hidden);
        }
    }
}
