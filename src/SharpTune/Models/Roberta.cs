using SharpTune.Models.Blocks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// RoBERTa (transformers' modeling_roberta): BERT's encoder with positions numbered from <c>pad_token_id + 1</c>
/// (padding tokens keep position <c>pad_token_id</c>) and a two-layer classification head on the first token.
/// </summary>
public static class Roberta
{
    public static IReadOnlyList<ModelRegistration> Registrations { get; } =
    [
        new("RobertaModel", "roberta", ModelTask.Base, config => new RobertaModel(config)),
        new("RobertaForSequenceClassification", "roberta", ModelTask.SequenceClassification, config => new RobertaForSequenceClassification(config)),
    ];
}

/// <summary><c>RobertaModel</c>: the BERT encoder with RoBERTa's position numbering, under the "roberta" prefix.</summary>
public sealed class RobertaModel(PretrainedConfig config, bool addPoolingLayer = true) : BertModel(nameof(RobertaModel), config, addPoolingLayer, BertVariant.Roberta);

/// <summary>dropout → dense → tanh → dropout → out_proj on the first token (<c>classifier.*</c>).</summary>
internal sealed class RobertaClassificationHead : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> dense;
    private readonly Dropout dropout;
    private readonly nn.Module<Tensor, Tensor> out_proj;

    public RobertaClassificationHead(PretrainedConfig config) : base(nameof(RobertaClassificationHead))
    {
        var hidden = config.Require<long>("hidden_size");
        dense = nn.Linear(hidden, hidden);
        dropout = nn.Dropout(Bert.ClassifierDropout(config));
        out_proj = nn.Linear(hidden, config.NumLabels);
        RegisterComponents();
    }

    public override Tensor forward(Tensor features)
    {
        using var scope = NewDisposeScope();
        var first = dropout.forward(features.select(1, 0));
        var hidden = dropout.forward(dense.forward(first).tanh());
        return out_proj.forward(hidden).MoveToOuterDisposeScope();
    }
}

/// <summary><c>RobertaForSequenceClassification</c>: RoBERTa without pooler and <see cref="RobertaClassificationHead"/>.</summary>
public sealed class RobertaForSequenceClassification : BertPreTrainedModel
{
    private readonly RobertaModel roberta;
    private readonly RobertaClassificationHead classifier;

    public RobertaForSequenceClassification(PretrainedConfig config) : base(nameof(RobertaForSequenceClassification), config, BertVariant.Roberta)
    {
        roberta = new RobertaModel(config, addPoolingLayer: false);
        classifier = new RobertaClassificationHead(config);
        RegisterComponents();
    }

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var run = roberta.Run(inputs);
        var logits = classifier.forward(run.LastHiddenState);
        return run.WithHead(logits, SequenceClassificationLoss.Compute(logits, inputs, Config)).MoveToOuterDisposeScope();
    }
}
